"""The use cases, called as a library user calls them: settings and a request in, a result value
out, typed errors, nothing printed; and the public API's one list of names."""

from __future__ import annotations

import contextlib
import importlib
import io
import re
from pathlib import Path

import pytest

import dispatcher
import dispatcher.app
from dispatcher.app import RunRequest, ValidateRequest, run, validate
from dispatcher.config import Settings
from dispatcher.emulator.server import Emulator
from dispatcher.errors import FlagError, JobInvalid, NothingToDo
from dispatcher.ledger.store import Status
from tests.support.e2e import (
    API_KEY,
    CONFIG_YAML,
    emulator_in_thread,
    fast_settings,
    fleet,
    write_csv_job,
)


def five_lines() -> str:
    """The example in dispatcher.app's docstring, as written there."""
    doc = dispatcher.app.__doc__ or ""
    block = re.search(r"::\n\n((?:(?:    .*)?\n)+?)\S", doc)
    assert block is not None
    return "\n".join(line[4:] for line in block.group(1).strip("\n").splitlines())


def test_the_five_line_example_runs_a_job_against_the_emulator(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code = five_lines()
    assert len([line for line in code.splitlines() if line]) == 5
    server = Emulator()
    with emulator_in_thread(server) as url:
        (tmp_path / "jobs").mkdir()
        write_csv_job(tmp_path / "jobs", fleet(3), name="example.yaml")
        (tmp_path / "config.yaml").write_text(
            CONFIG_YAML + f"onenet:\n  base_url: {url}\n", encoding="utf-8"
        )
        monkeypatch.chdir(tmp_path)
        monkeypatch.setenv("ONENET_API_KEY", API_KEY)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(code, {})
    assert f"{Status.ACCEPTED!r}: 3" in out.getvalue()
    assert len(server.accepted()) == 3


def test_run_raises_nothing_to_do_when_every_command_is_final(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ONENET_API_KEY", API_KEY)
    job = write_csv_job(tmp_path, fleet(2))
    with emulator_in_thread(Emulator()) as url:
        settings = fast_settings().with_overrides(base_url=url)
        first = run(settings, RunRequest(job))
        assert first.result is not None and first.result.counts[Status.ACCEPTED] == 2
        with pytest.raises(NothingToDo) as finished:
            run(settings, RunRequest(job))
    assert finished.value.through
    assert "the job is finished (2 accepted): nothing to send" in str(finished.value)


def test_run_of_an_invalid_job_raises_job_invalid_and_makes_no_ledger(tmp_path: Path) -> None:
    job = tmp_path / "bad.csv"
    job.write_text("imei,obj_id,obj_inst_id,res_id,expired_time\n123,5,0,2,+1d\n", "utf-8")
    with pytest.raises(JobInvalid, match="1 error"):
        run(Settings(), RunRequest(job, dry_run=True))
    assert not (tmp_path / "bad.csv.ledger.db").exists()


def test_a_wrong_start_flag_is_a_flag_error_naming_the_flag(tmp_path: Path) -> None:
    job = write_csv_job(tmp_path, fleet(1))
    with pytest.raises(FlagError) as wrong:
        run(Settings(), RunRequest(job, dry_run=True, start_at="+1d"))
    assert wrong.value.flag == "--start-at"


def test_validate_yields_each_file_in_order_with_its_error_or_result(tmp_path: Path) -> None:
    good = write_csv_job(tmp_path, fleet(2))
    missing = tmp_path / "missing.yaml"
    checked = list(validate(None, ValidateRequest((missing, good))))
    assert [c.path for c in checked] == [missing, good]
    assert checked[0].error is not None and not checked[0].ok
    assert checked[1].ok and checked[1].result is not None and checked[1].result.commands == 2


@pytest.mark.parametrize("package", [dispatcher, dispatcher.app])
def test_every_public_name_resolves_from_its_home(package: object) -> None:
    names = package.__all__  # type: ignore[attr-defined]
    assert names == sorted(names) and names
    for name in names:
        value = getattr(package, name)
        home = package._HOME[name]  # type: ignore[attr-defined]
        assert getattr(importlib.import_module(home), name) is value

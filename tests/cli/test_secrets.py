"""The api-key stays secret: never in output, logs, the ledger or reports, even when the run stops
early; masking whole tokens only; the library's warnings in the console's voice."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from dispatcher.cli import console
from dispatcher.emulator.server import Emulator, Faults, serve
from tests.support.cli import (
    SECRET,
    dispatcher_async,
    invoke,
)
from tests.support.job_texts import BAD_YAML, I1, I2, I3, I4, WriteFile, job_yaml


def files_holding(folder: Path, pattern: str, secret: str) -> tuple[list[str], list[str]]:
    """The names of the files matching ``pattern`` whose bytes hold ``secret``, and all names."""
    files = sorted(folder.glob(pattern))
    return [p.name for p in files if secret.encode() in p.read_bytes()], [p.name for p in files]


# --- the api-key stays secret ----------------------------------------------------------------


async def test_api_key_never_appears_in_output_logs_ledger_or_reports(tmp_path: Path) -> None:
    (tmp_path / "job.yaml").write_text(job_yaml(I1, I2, I3, I4), encoding="utf-8")
    (tmp_path / "config.yaml").write_text(
        "retry:\n  initial_backoff_s: 0\n  max_backoff_s: 0\n", encoding="utf-8"
    )
    # The emulator only accepts this key: an accepted command proves the key went out.
    faults = Faults(api_key=SECRET, foreign_imeis=frozenset({I2}), fail_rate=0.3, seed=3)
    emulator = Emulator(faults)
    async with serve(emulator) as url:
        run = await dispatcher_async(
            "-vv",
            "run",
            "job.yaml",
            "--config",
            "config.yaml",
            "--base-url",
            url,
            "--rate",
            "0",
            cwd=tmp_path,
        )
        reports = [
            await dispatcher_async(
                "-vv", "report", "job.yaml.ledger.db", "--format", fmt, cwd=tmp_path
            )
            for fmt in ("table", "csv", "jsonl", "json")
        ]
    assert run.code == 3, run.stderr
    assert len(emulator.accepted()) == 3
    assert "DEBUG" in run.stderr  # -vv really logged
    texts = [run.stdout, run.stderr] + [r.stdout + r.stderr for r in reports]
    assert all(r.code == 0 for r in reports)
    assert [text for text in texts if SECRET in text] == []
    holding, checked = files_holding(tmp_path, "job.yaml.ledger.db*", SECRET)
    assert checked
    assert holding == []


def test_api_key_is_not_shown_when_the_run_stops_early(write_file: WriteFile) -> None:
    job = write_file("bad.yaml", BAD_YAML)
    result = invoke(
        "-vv", "run", job, "--base-url", f"http://user:{SECRET}@example.invalid/", key=SECRET
    )
    assert result.exit_code == 1
    assert SECRET not in result.output


def test_a_short_key_that_is_a_word_is_masked_without_garbling_messages() -> None:
    console.redact("test")  # undone after the test (conftest.py)
    assert console.mask("latest test run: tested") == "latest *** run: tested"
    assert console.mask("api-key=test&x") == "api-key=***&x"


def test_library_warnings_read_in_the_consoles_voice_by_default(
    capsys: pytest.CaptureFixture[str],
) -> None:
    console.setup_logging(0)
    try:
        logging.getLogger("dispatcher.run.reconcile").warning("history of %s unreachable", "x")
        assert capsys.readouterr().err == "warning: history of x unreachable\n"
        console.setup_logging(1)
        logging.getLogger("dispatcher.run.reconcile").warning("again")
        assert " WARNING dispatcher.run.reconcile: again" in capsys.readouterr().err
    finally:
        console.setup_logging(0)

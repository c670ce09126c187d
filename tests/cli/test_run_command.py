"""``dispatcher run``: refusing to start (flags, config, the key, plain http), and runs against the
emulator (the ledger beside the job, resume, foreign devices, a held ledger)."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from dispatcher.emulator.server import Emulator, Faults, serve
from dispatcher.ledger.sqlite import Ledger
from dispatcher.ledger.store import Status
from tests.support.cli import (
    SECRET,
    LedgerHolder,
    dispatcher_async,
    invoke,
    no_traceback,
    nothing_sent,
)
from tests.support.job_texts import BAD_LUHN, BAD_YAML, I1, I2, I3, I4, WriteFile, job_yaml

# --- run: refusing to start --------------------------------------------------------------------


def test_run_with_resend_in_doubt_needs_no_reconcile(write_file: WriteFile) -> None:
    path = write_file("job.yaml", job_yaml(I1))
    result = invoke("run", path, "--resend-in-doubt", "--base-url", "http://127.0.0.1:9")
    assert result.exit_code == 2
    assert "--resend-in-doubt needs --no-reconcile" in result.stderr
    assert not (path.parent / "job.yaml.ledger.db").exists()


def test_run_with_an_unknown_flag_is_a_usage_error(write_file: WriteFile) -> None:
    path = write_file("job.yaml", job_yaml(I1))
    result = invoke("run", path, "--fast")
    assert result.exit_code == 2
    assert "No such option" in result.stderr
    assert "--fast" in result.stderr


@pytest.mark.parametrize("flag", [("--concurrency", "0"), ("--rate", "many")])
def test_run_with_a_bad_flag_value_is_a_usage_error(
    write_file: WriteFile, flag: tuple[str, str]
) -> None:
    path = write_file("job.yaml", job_yaml(I1))
    result = invoke("run", path, *flag)
    assert result.exit_code == 2
    assert flag[0] in result.stderr


def test_run_with_a_bad_config_fails_naming_file_and_key(write_file: WriteFile) -> None:
    job = write_file("job.yaml", job_yaml(I1))
    config = write_file("config.yaml", "limits:\n  concurency: 4\n")
    result = invoke("run", job, "--config", config)
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        f"error: {config}: limits.concurency: unknown key (did you mean 'concurrency'?)"
    )
    assert not (job.parent / "job.yaml.ledger.db").exists()


def test_run_with_a_missing_config_fails(write_file: WriteFile) -> None:
    job = write_file("job.yaml", job_yaml(I1))
    result = invoke("run", job, "--config", job.parent / "nowhere.yaml")
    assert result.exit_code == 1
    assert "nowhere.yaml: cannot read the config file" in result.stderr


def test_run_without_the_api_key_names_the_variable(write_file: WriteFile) -> None:
    job = write_file("job.yaml", job_yaml(I1))
    result = invoke("run", job, key=None)
    assert result.exit_code == 1
    assert "ONENET_API_KEY" in result.stderr
    assert result.stderr.startswith("error: the api-key is not set")


def test_run_without_the_variable_the_config_names_names_it(write_file: WriteFile) -> None:
    job = write_file("job.yaml", job_yaml(I1))
    config = write_file("config.yaml", "onenet:\n  api_key_env: FLEET_KEY\n")
    result = invoke("run", job, "--config", config)  # ONENET_API_KEY is set, FLEET_KEY is not
    assert result.exit_code == 1
    assert "FLEET_KEY" in result.stderr
    assert SECRET not in result.output


def test_run_warns_when_the_key_would_go_over_plain_http(write_file: WriteFile) -> None:
    # The job is invalid, so nothing is sent: the warning comes before any connection.
    job = write_file("bad.yaml", BAD_YAML)
    result = invoke("run", job, "--base-url", "http://example.invalid:8080")
    assert result.exit_code == 1
    assert (
        "warning: the api-key will be sent unencrypted over plain http to example.invalid;"
        " use https"
    ) in result.stderr
    assert "nothing was sent" in result.stderr
    assert SECRET not in result.output


def test_run_warns_about_plain_http_from_the_config_too(write_file: WriteFile) -> None:
    job = write_file("bad.yaml", BAD_YAML)
    config = write_file("config.yaml", "onenet:\n  base_url: http://api.heclouds.com\n")
    result = invoke("run", job, "--config", config)
    assert result.exit_code == 1
    assert "plain http to api.heclouds.com" in result.stderr


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:9", "http://[::1]:9", "http://localhost:9", "https://example.invalid"]
)
def test_run_does_not_warn_for_loopback_or_https(write_file: WriteFile, url: str) -> None:
    job = write_file("bad.yaml", BAD_YAML)
    result = invoke("run", job, "--base-url", url)
    assert result.exit_code == 1
    assert "warning:" not in result.stderr
    assert "nothing was sent" in result.stderr


@pytest.mark.parametrize(
    ("files", "args", "expected"),
    [
        ({"job.yaml": BAD_YAML}, ["job.yaml"], "job.yaml: 4 error(s): nothing was sent"),
        (
            {"job.yaml": job_yaml(I1, I2), "config.yaml": "limits:\n  concurrency: 0\n"},
            ["job.yaml", "--config", "config.yaml"],
            "limits.concurrency: 0 must be within 1..1024",
        ),
        ({"job.yaml": job_yaml(I1, BAD_LUHN)}, ["job.yaml", "--strict"], "nothing was sent"),
        ({"job.yaml": b"\x00\xff" * 100}, ["job.yaml"], "job.yaml"),
        ({}, ["nowhere.yaml"], "nowhere.yaml: no such file"),
    ],
)
async def test_run_that_cannot_start_sends_nothing(
    tmp_path: Path, files: dict[str, str | bytes], args: list[str], expected: str
) -> None:
    for name, content in files.items():
        data = content.encode() if isinstance(content, str) else content
        (tmp_path / name).write_bytes(data)
    emulator = Emulator()
    async with serve(emulator) as url:
        done = await dispatcher_async("run", *args, "--base-url", url, cwd=tmp_path)
    assert done.code == 1, done.stderr
    assert expected in done.stderr
    assert no_traceback(done.stdout, done.stderr)
    assert nothing_sent(emulator)
    assert not (tmp_path / "job.yaml.ledger.db").exists()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--rate", "-1"], "Invalid value for '--rate': -1.0 is not in the range x>=0"),
        (["--rate", "nan"], "Invalid value for '--rate': 'nan' is not a finite number"),
        (["--rate", "inf"], "Invalid value for '--rate': 'inf' is not a finite number"),
        (["--concurrency", "0"], "--concurrency"),
        (["--base-url", "http://h:99999"], "onenet.base_url"),
        (["--base-url", "http://[::1"], "onenet.base_url"),
        (["--base-url", "ftp://example.com"], "onenet.base_url"),
    ],
)
async def test_every_bad_flag_value_is_a_usage_error(
    tmp_path: Path, args: list[str], expected: str
) -> None:
    (tmp_path / "job.yaml").write_text(job_yaml(I1, I2), encoding="utf-8")
    emulator = Emulator()
    async with serve(emulator) as url:
        base = [] if "--base-url" in args else ["--base-url", url]
        done = await dispatcher_async("run", "job.yaml", *args, *base, cwd=tmp_path)
    assert done.code == 2, done.stderr
    assert expected in done.stderr
    assert no_traceback(done.stdout, done.stderr)
    assert nothing_sent(emulator)


async def test_run_without_the_api_key_sends_nothing(tmp_path: Path) -> None:
    (tmp_path / "job.yaml").write_text(job_yaml(I1, I2), encoding="utf-8")
    emulator = Emulator()
    async with serve(emulator) as url:
        done = await dispatcher_async("run", "job.yaml", "--base-url", url, cwd=tmp_path, key=None)
    assert done.code == 1
    assert "ONENET_API_KEY" in done.stderr
    assert nothing_sent(emulator)


# --- run: against the emulator ---------------------------------------------------------------


async def test_run_sends_every_command_and_writes_a_private_ledger_next_to_the_job(
    tmp_path: Path,
) -> None:
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    (jobs / "fleet.yaml").write_text(job_yaml(I1, I2, I3), encoding="utf-8")
    emulator = Emulator(Faults(api_key=SECRET))
    async with serve(emulator) as url:
        done = await dispatcher_async(
            "run", "jobs/fleet.yaml", "--base-url", url, "--rate", "0", cwd=tmp_path
        )
    assert done.code == 0, done.stderr
    ledger_path = jobs / "fleet.yaml.ledger.db"
    assert ledger_path.is_file()
    assert stat.S_IMODE(ledger_path.stat().st_mode) == 0o600
    assert not (tmp_path / "fleet.yaml.ledger.db").exists()
    summary = [line for line in done.stdout.splitlines() if line.strip()]
    assert summary[0] == "job: 3 commands: 3 accepted"
    assert summary[1].startswith("this run: 4 requests")  # the clock probe, then 3 sends
    assert "3 accepted" in summary[1]
    assert len(summary) == 2
    assert "━" not in done.stderr  # no live progress when stderr is not a terminal
    assert no_traceback(done.stderr)

    stored = {c.imei: c for c in emulator.accepted()}
    assert sorted(stored) == sorted([I1, I2, I3])
    assert all(c.args == "report_interval=900" for c in stored.values())
    ledger = Ledger.open(ledger_path, read_only=True)
    try:
        rows = list(ledger.rows())
    finally:
        ledger.close()
    assert {row.command.imei: row.status for row in rows} == dict.fromkeys(
        [I1, I2, I3], Status.ACCEPTED
    )
    assert {row.command.imei: row.uuid for row in rows} == {i: c.uuid for i, c in stored.items()}


async def test_run_with_an_explicit_ledger_writes_it_there(tmp_path: Path) -> None:
    (tmp_path / "job.yaml").write_text(job_yaml(I1), encoding="utf-8")
    (tmp_path / "out").mkdir()
    emulator = Emulator()
    async with serve(emulator) as url:
        done = await dispatcher_async(
            "run", "job.yaml", "--ledger", "out/results.db", "--base-url", url, cwd=tmp_path
        )
    assert done.code == 0, done.stderr
    assert (tmp_path / "out" / "results.db").is_file()
    assert stat.S_IMODE((tmp_path / "out" / "results.db").stat().st_mode) == 0o600
    assert not (tmp_path / "job.yaml.ledger.db").exists()


async def test_run_again_resumes_and_sends_nothing_already_accepted(tmp_path: Path) -> None:
    (tmp_path / "job.yaml").write_text(job_yaml(I1, I2), encoding="utf-8")
    emulator = Emulator()
    async with serve(emulator) as url:
        first = await dispatcher_async("run", "job.yaml", "--base-url", url, cwd=tmp_path)
        posts = emulator.stats()["posts"]
        second = await dispatcher_async("run", "job.yaml", "--base-url", url, cwd=tmp_path)
    assert (first.code, second.code) == (0, 0)
    assert posts == 2
    assert emulator.stats()["posts"] == 2
    assert len(emulator.accepted()) == 2


async def test_run_with_foreign_imeis_finishes_with_exit_3(tmp_path: Path) -> None:
    (tmp_path / "job.yaml").write_text(job_yaml(I1, I2, I3, I4), encoding="utf-8")
    emulator = Emulator(Faults(foreign_imeis=frozenset({I3})))
    async with serve(emulator) as url:
        done = await dispatcher_async(
            "run", "job.yaml", "--base-url", url, "--rate", "0", cwd=tmp_path
        )
    assert done.code == 3, done.stderr
    assert "3 accepted" in done.stdout
    assert "1 rejected" in done.stdout
    assert sorted(c.imei for c in emulator.accepted()) == sorted([I1, I2, I4])
    report = invoke("report", tmp_path / "job.yaml.ledger.db", "--format", "jsonl")
    records = {r["imei"]: r for r in map(json.loads, report.stdout.splitlines())}
    assert (records[I3]["status"], records[I3]["errno"]) == ("rejected", 1)
    assert records[I3]["uuid"] is None


async def test_run_refuses_a_ledger_another_dispatcher_holds(tmp_path: Path) -> None:
    (tmp_path / "job.yaml").write_text(job_yaml(I1), encoding="utf-8")
    emulator = Emulator()
    with LedgerHolder(tmp_path / "job.yaml.ledger.db"):
        async with serve(emulator) as url:
            done = await dispatcher_async("run", "job.yaml", "--base-url", url, cwd=tmp_path)
    assert done.code == 1
    assert "in use by another dispatcher" in done.stderr
    assert no_traceback(done.stderr)
    assert nothing_sent(emulator)

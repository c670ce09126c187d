"""The command line, in-process (click's CliRunner) and as a real process against the emulator."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import logging
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

import dispatcher
from dispatcher.cli import console
from dispatcher.cli.commands import main
from dispatcher.emulator.server import Emulator, Faults, serve
from dispatcher.job.model import load_job
from dispatcher.ledger.sqlite import Ledger
from dispatcher.ledger.store import Status
from tests.support.cli import (
    SECRET,
    Done,
    dispatcher_async,
    dispatcher_process,
    invoke,
    no_traceback,
    nothing_sent,
    process_env,
)
from tests.support.e2e import fleet, write_csv_job

WriteFile = Callable[[str, "str | bytes"], Path]
ROOT = Path(__file__).resolve().parents[2]
AT = "2030-01-01T12:00:00"  # a planned start for validate: every absolute time below is after it
# Valid IMEIs (correct Luhn check digit).
I1, I2, I3, I4 = "490154203237518", "864512030000003", "358476090000076", "867231050000002"
BAD_LUHN = "490154203237519"
EXPORT_COLUMNS = (
    "imei", "obj_id", "obj_inst_id", "res_id", "args", "status", "errno", "error", "uuid",
    "attempts", "source",
)  # fmt: skip

GOOD_YAML = f"""\
job: reboot bench
defaults:
  obj_id: 3
  obj_inst_id: 0
  res_id: 4
  args: "reboot"
  expired_time: +2d
targets:
  - imei: "{I1}"
  - imei: {I2}
    args: "reboot now"
  - imei: "{I3}"
    trigger: [register, update]
"""

GOOD_CSV = (
    "imei,obj_id,obj_inst_id,res_id,args,expired_time,trigger_msg\r\n"
    f'{I1},3303,0,5605,"on, full",2030-01-03T00:00:00,7\r\n'
    f"{I2},3303,0,5605,off,+6h,2\r\n"
)

# The resource line of validate's summary for GOOD_YAML (and the bad jobs), and for GOOD_CSV.
REBOOT = "  resource: 3/0/4 Device · Reboot (E)"
RESET = "  resource: 3303/0/5605 Temperature · Reset Min and Max Measured Values (E)"

BAD_YAML = f"""\
job: broken
defaults:
  obj_id: 3
  obj_inst_id: 0
  res_id: 4
  expired_time: +2d
targets:
  - imei: "{I1}"
    tigger_msg: 3
  - imei: "12345"
  - imei: "{I2}"
    obj_id: 70000
  - imei: "{I3}"
    valid_time: "2030-01-05T00:00:00"
    expired_time: "2030-01-04T00:00:00"
  - imei: "{I4}"
"""
BAD_YAML_LINES = [
    "bad.yaml:9: tigger_msg: unknown field (did you mean trigger_msg?)",
    "bad.yaml:10: imei: must be 15 digits, got '12345'",
    "bad.yaml:12: obj_id: must be a whole number from 0 to 65535, got '70000'",
    "bad.yaml:15: expired_time: must be later than valid_time (2030-01-05T00:00:00)",
]

BAD_CSV = (
    "imei,obj_id,obj_inst_id,res_id,expired_time\n"
    f"{I1},3,0,4,+2d\n"
    "12345,3,0,4,+2d\n"
    f"{I2},3,0,x,+2d\n"
    f"{I3},3,0,4,2029-01-01T00:00:00\n"
)
BAD_CSV_LINES = [
    "bad.csv:3: imei: must be 15 digits, got '12345'",
    "bad.csv:4: res_id: must be a whole number from 0 to 65535, got 'x'",
    "bad.csv:5: expired_time: 2029-01-01T00:00:00 is in the past at the start checked against"
    " (2030-01-01T12:00:00 UTC+8); OneNET refuses it",
]


def job_yaml(*imeis: str) -> str:
    """A valid job for the given devices, relative times only (valid whenever it runs)."""
    targets = "".join(f'  - imei: "{imei}"\n' for imei in imeis)
    return (
        "job: cli test\n"
        "defaults:\n"
        "  obj_id: 3303\n"
        "  obj_inst_id: 0\n"
        "  res_id: 5605\n"
        '  args: "report_interval=900"\n'
        "  expired_time: +1d\n"
        f"targets:\n{targets}"
    )


# --- running the command line ----------------------------------------------------------------


def files_holding(folder: Path, pattern: str, secret: str) -> tuple[list[str], list[str]]:
    """The names of the files matching ``pattern`` whose bytes hold ``secret``, and all names."""
    files = sorted(folder.glob(pattern))
    return [p.name for p in files if secret.encode() in p.read_bytes()], [p.name for p in files]


# --- help and version ------------------------------------------------------------------------


def test_module_help_lists_every_command(tmp_path: Path) -> None:
    done = dispatcher_process("--help", cwd=tmp_path)
    assert done.code == 0
    for command in ("validate", "run", "report", "emulator", "demo"):
        assert f"  {command}" in done.stdout
    assert done.stderr == ""


def test_module_version_prints_the_package_version(tmp_path: Path) -> None:
    version = dispatcher.__version__
    done = dispatcher_process("--version", cwd=tmp_path)
    assert no_traceback(done.stderr)
    assert done.code == 0
    assert version in done.stdout


def test_demo_help_shows_its_options() -> None:
    result = invoke("demo", "--help")
    assert result.exit_code == 0
    for option in ("--job", "--rate", "--faults / --no-faults"):
        assert option in result.stdout


def test_the_demo_shows_the_whole_loop(tmp_path: Path) -> None:
    (tmp_path / "jobs").mkdir()
    shutil.copy(ROOT / "jobs" / "small.yaml", tmp_path / "jobs")
    done = dispatcher_process("demo", "--job", "jobs/small.yaml", cwd=tmp_path, key=None)
    assert done.code == 0, done.stderr
    said = done.stdout + done.stderr
    assert "jobs/small.yaml: valid" in said  # validated
    assert "job: 5 commands: 5 accepted" in said  # pushed
    assert "+2 days:" in said and "delivered" in said  # deliveries watched to the end
    page = tmp_path / ".demo" / "small.report.html"
    assert page.is_file() and "<svg" in page.read_text(encoding="utf-8")  # the report
    assert "Traceback" not in said


@pytest.mark.parametrize(
    "command", ["validate", "run", "report", "emulator", "status", "cancel", "retry-failed"]
)
def test_every_command_has_help(command: str) -> None:
    result = invoke(command, "-h")
    assert result.exit_code == 0
    assert f"Usage: main {command}" in result.stdout


def test_every_listed_command_loads_under_its_own_name() -> None:
    # The commands but validate are imported when asked for: a slip in their table would only
    # show when that one command is run.
    ctx = main.make_context("dispatcher", ["--help"], resilient_parsing=True)
    names = main.list_commands(ctx)
    assert {"validate", "run", "status", "cancel", "retry-failed", "report", "demo"} <= set(names)
    assert {"emulator", "objects"} <= set(names)
    for name in names:
        command = main.get_command(ctx, name)
        assert command is not None and command.name == name


def test_validate_does_not_load_the_client(write_file: WriteFile, tmp_path: Path) -> None:
    job = write_file("job.csv", f"imei,obj_id,obj_inst_id,res_id,expired_time\n{I1},5,0,2,+1d\n")
    probe = (
        "import sys\n"
        "from dispatcher.cli.commands import main\n"
        "try:\n"
        f"    main(['validate', {str(job)!r}])\n"
        "except SystemExit as exit:\n"
        "    print('exit', exit.code, 'aiohttp' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path, check=False
    )
    assert done.stdout.splitlines()[-1] == "exit 0 False", done.stdout + done.stderr


def test_unknown_command_is_a_usage_error() -> None:
    result = invoke("send")
    assert result.exit_code == 2
    assert "No such command 'send'" in result.stderr


# --- validate ----------------------------------------------------------------------------------


def test_validate_good_yaml_prints_the_summary(write_file: WriteFile) -> None:
    path = write_file("good.yaml", GOOD_YAML)
    result = invoke("validate", path, "--at", AT)
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [
        f"{path}: valid; 3 valid commands, 3 devices, "
        "window 2030-01-01T12:00:00 .. 2030-01-03T12:00:00 (UTC+8), 0 warnings",
        REBOOT,
    ]
    assert result.stderr == ""


def test_validate_good_csv_prints_the_summary(write_file: WriteFile) -> None:
    path = write_file("good.csv", "\ufeff" + GOOD_CSV)
    result = invoke("validate", path, "--at", AT)
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [
        f"{path}: valid; 2 valid commands, 2 devices, "
        "window 2030-01-01T12:00:00 .. 2030-01-03T00:00:00 (UTC+8), 0 warnings",
        RESET,
    ]


def test_validate_without_at_checks_against_now(write_file: WriteFile) -> None:
    path = write_file("good.yaml", GOOD_YAML)
    result = invoke("validate", path)
    assert result.exit_code == 0
    assert result.stdout.startswith(f"{path}: valid; 3 valid commands, 3 devices, window ")


def test_validate_counts_distinct_devices(write_file: WriteFile) -> None:
    path = write_file(
        "two-per-device.csv",
        f"imei,obj_id,obj_inst_id,res_id,args,expired_time\n"
        f"{I1},3,0,4,a,+1d\n{I1},3,0,4,b,+1d\n{I2},3,0,4,a,+1d\n",
    )
    result = invoke("validate", path, "--at", AT)
    assert result.exit_code == 0
    assert "; 3 valid commands, 2 devices, " in result.stdout


def test_validate_bad_yaml_prints_every_problem_with_its_line(
    write_file: WriteFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_file("bad.yaml", BAD_YAML)
    monkeypatch.chdir(path.parent)
    result = invoke("validate", "bad.yaml", "--at", AT)
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[:-2] == BAD_YAML_LINES
    assert lines[-2].startswith("bad.yaml: INVALID: 4 error(s); ")
    assert lines[-1] == REBOOT


def test_validate_missing_field_cites_the_target_entry(
    write_file: WriteFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_file(
        "missing.yaml",
        "defaults:\n"
        "  obj_id: 3\n"
        "  obj_inst_id: 0\n"
        "  expired_time: +2d\n"
        "targets:\n"
        f'  - imei: "{I1}"\n'
        "    res_id: 4\n"
        f'  - imei: "{I2}"\n',
    )
    monkeypatch.chdir(write_file("x", "").parent)
    result = invoke("validate", "missing.yaml", "--at", AT)
    assert result.exit_code == 1
    assert result.stdout.splitlines()[0] == "missing.yaml:8: res_id: is required"


def test_validate_bad_csv_prints_every_problem_with_its_file_line(
    write_file: WriteFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_file("bad.csv", BAD_CSV)
    monkeypatch.chdir(path.parent)
    result = invoke("validate", "bad.csv", "--at", AT)
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[:-2] == BAD_CSV_LINES
    assert lines[-2].startswith("bad.csv: INVALID: 3 error(s); ")
    assert lines[-1] == REBOOT


def test_validate_several_files_reports_each_and_fails_if_any_is_invalid(
    write_file: WriteFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_file("good.yaml", GOOD_YAML)
    write_file("bad.csv", BAD_CSV)
    write_file("good.csv", GOOD_CSV)
    monkeypatch.chdir(write_file("x", "").parent)
    result = invoke("validate", "good.yaml", "bad.csv", "good.csv", "--at", AT)
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[0].startswith("good.yaml: valid; 3 valid commands")
    assert lines[1] == REBOOT
    assert lines[2:5] == BAD_CSV_LINES
    assert lines[5].startswith("bad.csv: INVALID: 3 error(s)")
    assert lines[6] == REBOOT
    assert lines[7].startswith("good.csv: valid; 2 valid commands")
    assert lines[8] == RESET
    assert len(lines) == 9


def test_validate_several_good_files_succeeds(write_file: WriteFile) -> None:
    yaml_path, csv_path = write_file("good.yaml", GOOD_YAML), write_file("good.csv", GOOD_CSV)
    result = invoke("validate", yaml_path, csv_path, "--at", AT)
    assert result.exit_code == 0
    assert [line.split(": ")[1] for line in result.stdout.splitlines()] == [
        "valid; 3 valid commands, 3 devices,"
        " window 2030-01-01T12:00:00 .. 2030-01-03T12:00:00 (UTC+8), 0 warnings",
        REBOOT.split(": ")[1],
        "valid; 2 valid commands, 2 devices,"
        " window 2030-01-01T12:00:00 .. 2030-01-03T00:00:00 (UTC+8), 0 warnings",
        RESET.split(": ")[1],
    ]


def test_validate_warning_passes_and_strict_makes_it_an_error(
    write_file: WriteFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_file("warn.csv", f"imei,obj_id,obj_inst_id,res_id,expired_time\n{BAD_LUHN},3,0,4,+2d\n")
    monkeypatch.chdir(write_file("x", "").parent)
    problem = f"warn.csv:2: imei: check digit is wrong (Luhn: {I1}); is there a typo?"

    lenient = invoke("validate", "warn.csv", "--at", AT)
    assert lenient.exit_code == 0
    assert lenient.stdout.splitlines()[0] == problem + " (warning)"
    assert lenient.stdout.splitlines()[1].endswith(", 1 warning")
    assert ": valid; 1 valid command," in lenient.stdout

    strict = invoke("validate", "warn.csv", "--at", AT, "--strict")
    assert strict.exit_code == 1
    assert strict.stdout.splitlines()[0] == problem
    assert "INVALID: 1 error(s)" in strict.stdout


def test_validate_at_with_a_zone_is_converted_to_beijing_time(write_file: WriteFile) -> None:
    path = write_file("good.yaml", GOOD_YAML)
    result = invoke("validate", path, "--at", "2030-01-01T04:00:00Z")
    assert result.exit_code == 0
    assert "window 2030-01-01T12:00:00 .. 2030-01-03T12:00:00 (UTC+8)" in result.stdout


def test_validate_at_after_an_absolute_expiry_is_an_error(write_file: WriteFile) -> None:
    path = write_file("good.csv", GOOD_CSV)
    good = invoke("validate", path, "--at", AT)
    late = invoke("validate", path, "--at", "2030-01-03T00:00:01")
    assert good.exit_code == 0
    assert late.exit_code == 1
    assert f"{path}:2: expired_time: 2030-01-03T00:00:00 is in the past" in late.stdout


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        ("tomorrow", "Invalid value for --at: 'tomorrow' is not a time"),
        ("2030-13-01T00:00:00", "Invalid value for --at"),
        ("+1h", "Invalid value for --at: give an absolute time"),
    ],
)
def test_validate_at_that_is_not_an_absolute_time_is_a_usage_error(
    write_file: WriteFile, at: str, expected: str
) -> None:
    path = write_file("good.yaml", GOOD_YAML)
    result = invoke("validate", path, "--at", at)
    assert result.exit_code == 2
    assert expected in result.stderr
    assert result.stdout == ""


def test_validate_without_a_file_is_a_usage_error() -> None:
    result = invoke("validate")
    assert result.exit_code == 2
    assert "Missing argument 'JOBFILES...'" in result.stderr


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("nowhere.yaml", None, "error: {path}: no such file"),
        ("folder", "dir", "error: {path}: is a directory, not a job file"),
        ("garbage.yaml", b"\x00\xff\xfe\x81" * 64 + b"\n\x9c\x00", "error: {path}"),
        ("garbage.csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xd8", "error: {path}"),
        ("syntax.yaml", "targets: [\n  - imei: 1\n", "error: {path}:"),
    ],
)
def test_validate_unreadable_file_is_one_line_error_without_traceback(
    tmp_path: Path, name: str, content: str | bytes | None, expected: str
) -> None:
    path = tmp_path / name
    if content == "dir":
        path.mkdir()
    elif isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    elif isinstance(content, bytes):
        path.write_bytes(content)
    result = invoke("validate", path, "--at", AT)
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(errors) == 1
    assert errors[0].startswith(expected.format(path=path))
    assert no_traceback(result.stdout, result.stderr)


def test_validate_ragged_csv_row_is_one_problem_line(
    write_file: WriteFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_file("ragged.csv", f"imei,obj_id,obj_inst_id,res_id,expired_time\n{I1},3,0,4,+2d,x\n")
    monkeypatch.chdir(write_file("x", "").parent)
    result = invoke("validate", "ragged.csv", "--at", AT)
    assert result.exit_code == 1
    assert result.stdout.splitlines()[0] == "ragged.csv:2: row: has 6 fields, the header has 5"
    assert no_traceback(result.stdout, result.stderr)


def test_validate_in_a_process_gives_one_line_errors_and_carries_on(tmp_path: Path) -> None:
    (tmp_path / "folder").mkdir()
    (tmp_path / "garbage.yaml").write_bytes(bytes(range(256)) * 8)
    (tmp_path / "good.yaml").write_text(GOOD_YAML, encoding="utf-8")
    done = dispatcher_process(
        "validate", "nowhere.yaml", "folder", "garbage.yaml", "good.yaml", "--at", AT, cwd=tmp_path
    )
    assert done.code == 1
    assert no_traceback(done.stdout, done.stderr)
    errors = done.stderr.splitlines()
    assert len(errors) == 3
    assert errors[0] == "error: nowhere.yaml: no such file"
    assert errors[1] == "error: folder: is a directory, not a job file"
    assert errors[2].startswith("error: garbage.yaml")
    assert done.stdout.startswith("good.yaml: valid; 3 valid commands, 3 devices")


def test_validate_in_a_process_prints_exact_problem_lines(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(BAD_YAML, encoding="utf-8")
    (tmp_path / "bad.csv").write_text(BAD_CSV, encoding="utf-8")
    done = dispatcher_process("validate", "bad.yaml", "bad.csv", "--at", AT, cwd=tmp_path)
    assert done.code == 1
    lines = done.stdout.splitlines()
    assert lines[:4] == BAD_YAML_LINES
    assert lines[5] == REBOOT
    assert lines[6:9] == BAD_CSV_LINES
    assert done.stderr == ""


def test_validate_in_a_process_succeeds_on_the_example_jobs(tmp_path: Path) -> None:
    jobs = sorted(p for p in (ROOT / "jobs").iterdir() if p.suffix in (".yaml", ".csv"))
    jobs = [p for p in jobs if "broken" not in p.name and "fleet" not in p.name]
    assert jobs
    done = dispatcher_process("validate", *jobs, cwd=tmp_path)
    assert done.code == 0, done.stdout + done.stderr
    assert len(done.stdout.splitlines()) >= len(jobs)


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


# --- report ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def finished_ledger(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ledger from a real run: three accepted, one rejected (errno 1)."""
    root = tmp_path_factory.mktemp("finished")
    (root / "job.yaml").write_text(job_yaml(I1, I2, I3, I4), encoding="utf-8")

    async def go() -> Done:
        emulator = Emulator(Faults(api_key=SECRET, foreign_imeis=frozenset({I4})))
        async with serve(emulator) as url:
            return await dispatcher_async(
                "run", "job.yaml", "--base-url", url, "--rate", "0", cwd=root
            )

    done = asyncio.run(go())
    assert done.code == 3, done.stderr
    return root / "job.yaml.ledger.db"


def test_report_table_summarizes_the_ledger(finished_ledger: Path) -> None:
    result = invoke("report", finished_ledger)
    assert result.exit_code == 0
    text = result.stdout
    assert "Ledger summary" in text
    rows = {
        cells[0]: cells[1]
        for cells in (
            [c.strip() for c in line.strip("│┃| ").split("│")]
            for line in text.splitlines()
            if "│" in line
        )
        if len(cells) == 2
    }
    assert rows["commands"] == "4"
    assert rows["accepted"].startswith("3")
    assert rows["rejected"].startswith("1")
    assert any(name.startswith("errno 1") for name in rows)
    assert "latency p50 / p95 / p99" in rows
    assert rows["runs"] == "1"


def test_report_csv_holds_one_record_per_command(finished_ledger: Path) -> None:
    result = invoke("report", finished_ledger, "--format", "csv")
    assert result.exit_code == 0
    assert result.stderr == ""
    records = list(csv.DictReader(io.StringIO(result.stdout, newline="")))
    assert len(records) == 4
    assert set(EXPORT_COLUMNS) <= set(records[0])
    by_imei = {r["imei"]: r for r in records}
    assert [by_imei[i]["status"] for i in (I1, I2, I3, I4)] == ["accepted"] * 3 + ["rejected"]
    assert by_imei[I4]["errno"] == "1"
    assert all(by_imei[i]["uuid"] for i in (I1, I2, I3))
    assert by_imei[I1]["source"] == "job.yaml:9"
    assert (by_imei[I1]["obj_id"], by_imei[I1]["res_id"]) == ("3303", "5605")


def test_report_jsonl_holds_one_object_per_line(finished_ledger: Path) -> None:
    result = invoke("report", finished_ledger, "--format", "jsonl")
    assert result.exit_code == 0
    assert result.stderr == ""
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(records) == 4
    assert all(set(EXPORT_COLUMNS) <= set(r) for r in records)
    assert sorted(r["status"] for r in records) == ["accepted"] * 3 + ["rejected"]
    assert {r["imei"]: r["obj_id"] for r in records} == dict.fromkeys([I1, I2, I3, I4], 3303)


def test_report_json_is_one_array(finished_ledger: Path) -> None:
    result = invoke("report", finished_ledger, "--format", "json")
    assert result.exit_code == 0
    assert result.stderr == ""
    records = json.loads(result.stdout)
    assert isinstance(records, list)
    assert sorted(r["imei"] for r in records) == sorted([I1, I2, I3, I4])
    assert all(set(EXPORT_COLUMNS) <= set(r) for r in records)


def test_report_formats_agree(finished_ledger: Path) -> None:
    as_json = json.loads(invoke("report", finished_ledger, "--format", "json").stdout)
    as_jsonl = [
        json.loads(line)
        for line in invoke("report", finished_ledger, "--format", "jsonl").stdout.splitlines()
    ]
    as_csv = list(
        csv.DictReader(
            io.StringIO(invoke("report", finished_ledger, "--format", "csv").stdout, newline="")
        )
    )
    assert as_json == as_jsonl
    assert [(r["imei"], r["uuid"] or "") for r in as_json] == [
        (r["imei"], r["uuid"]) for r in as_csv
    ]


def test_report_piped_into_a_reader_that_stops_early_exits_quietly(tmp_path: Path) -> None:
    ledger_path = tmp_path / "big.ledger.db"
    with Ledger.open(ledger_path) as ledger:  # far more than a pipe holds
        ledger.register(list(load_job(write_csv_job(tmp_path, fleet(2000))).commands()))
    command = [sys.executable, "-m", "dispatcher", "report", str(ledger_path), "--format", "jsonl"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        first = proc.stdout.readline()
        proc.stdout.close()  # as `| head -1` does
        err = proc.stderr.read().decode()
        code = proc.wait(timeout=60)
    assert code == 0
    assert json.loads(first)["status"] == "pending"
    assert err == ""


def test_report_on_a_missing_ledger_fails(tmp_path: Path) -> None:
    result = invoke("report", tmp_path / "nowhere.ledger.db")
    assert result.exit_code == 1
    assert result.stderr.strip() == f"error: {tmp_path / 'nowhere.ledger.db'}: no such ledger"
    assert result.stdout == ""


@pytest.mark.parametrize("content", [b"", b"not a database at all\n" * 100])
def test_report_on_a_file_that_is_not_a_ledger_fails(write_file: WriteFile, content: bytes) -> None:
    path = write_file("job.yaml.ledger.db", content)
    result = invoke("report", path, "--format", "csv")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: {path}")
    assert result.stdout == ""


def test_report_with_an_unknown_format_is_a_usage_error(finished_ledger: Path) -> None:
    result = invoke("report", finished_ledger, "--format", "xml")
    assert result.exit_code == 2
    assert "'xml' is not one of" in result.stderr


def test_report_leaves_the_ledger_unchanged(finished_ledger: Path) -> None:
    before = {p.name: p.read_bytes() for p in finished_ledger.parent.glob("job.yaml.ledger.db*")}
    for fmt in ("table", "csv", "jsonl", "json"):
        assert invoke("report", finished_ledger, "--format", fmt).exit_code == 0
    after = {p.name: p.read_bytes() for p in finished_ledger.parent.glob("job.yaml.ledger.db*")}
    assert after == before


class LedgerHolder:
    """Another process holding a ledger open for writing (its lock, and an open write
    transaction), as a run in progress does; released on exit."""

    SCRIPT = (
        "import sqlite3, sys\n"
        "from pathlib import Path\n"
        "from dispatcher.ledger.sqlite import Ledger\n"
        "path = Path(sys.argv[1])\n"
        "ledger = Ledger.open(path)\n"
        "writer = sqlite3.connect(path, isolation_level=None)\n"
        "writer.execute('BEGIN IMMEDIATE')\n"
        "writer.execute(\"UPDATE commands SET error = 'being written'\")\n"
        "print('holding', flush=True)\n"
        "sys.stdin.readline()\n"
        "writer.execute('ROLLBACK')\n"
        "writer.close()\n"
        "ledger.close()\n"
    )

    def __init__(self, path: Path) -> None:
        self.path = path
        self.proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> LedgerHolder:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", self.SCRIPT, str(self.path)],
            env=process_env(None),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline() == "holding\n"  # waits until it holds the ledger
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.proc is not None
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("\n")
        self.proc.stdin.close()
        self.proc.wait(timeout=30)
        self.proc.stdout.close()
        assert self.proc.returncode == 0


@pytest.mark.parametrize("fmt", ["table", "csv", "jsonl", "json"])
def test_report_reads_a_ledger_another_process_is_writing(finished_ledger: Path, fmt: str) -> None:
    expected = invoke("report", finished_ledger, "--format", fmt)
    with LedgerHolder(finished_ledger):
        result = invoke("report", finished_ledger, "--format", fmt)
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    if fmt != "table":
        assert result.stdout == expected.stdout  # the last committed state
    else:
        assert "Ledger summary" in result.stdout


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

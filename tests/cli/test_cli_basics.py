"""The command line's shape: help, version, every command loading under its name, the demo, an
unknown command."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import dispatcher
from dispatcher.cli.commands import main
from tests.support.cli import (
    dispatcher_process,
    invoke,
    no_traceback,
)
from tests.support.job_texts import I1, ROOT, WriteFile

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

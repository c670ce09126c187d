"""The command line: the ``dispatcher`` group and ``validate``, which only reads job files.

Every other command is in a module of its own (run, status, verify, cancel, retry-failed, report,
demo, emulator, objects, devices, jobs, ledger), imported only when it is the one given (or for
--help): ``validate`` does not load aiohttp, ``run`` not the emulator or the report templates.
The exit codes are in exits.py; the group gives each command its one-line summary and its help's
closing text.
"""

from __future__ import annotations

import importlib
import sys
from datetime import datetime
from pathlib import Path

import click

from dispatcher import __version__
from dispatcher.app.events import Quiet
from dispatcher.app.validating import ValidateRequest, validate as validate_files
from dispatcher.cli import console
from dispatcher.cli.exits import EXIT_INVALID, EXIT_OK, epilog, interruptible
from dispatcher.cli.plan_options import input_options
from dispatcher.job.model import Problem, Reading
from dispatcher.times import parse_timespec

__all__ = ["main"]

# The other commands: name -> (module, the click command in it); --help lists all by name.
_COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("dispatcher.cli.run_command", "run"),
    "status": ("dispatcher.cli.status_command", "status"),
    "verify": ("dispatcher.cli.verify_command", "verify"),
    "cancel": ("dispatcher.cli.cancel_command", "cancel"),
    "retry-failed": ("dispatcher.cli.retry_command", "retry_failed"),
    "report": ("dispatcher.cli.report_command", "report"),
    "demo": ("dispatcher.cli.demo", "demo"),
    "emulator": ("dispatcher.cli.emulator_command", "emulator"),
    "objects": ("dispatcher.cli.objects_command", "objects_command"),
    "devices": ("dispatcher.cli.devices_command", "devices"),
    "jobs": ("dispatcher.cli.jobs_command", "jobs"),
    "ledger": ("dispatcher.cli.ledger_command", "ledger"),
}

# Each command's line in `dispatcher --help`: a whole phrase. Without one, click cuts the first
# sentence of the command's help to what fits beside the names, mid-phrase, with "...".
_SUMMARIES: dict[str, str] = {
    "validate": "Check job files; send nothing",
    "run": "Validate a job file, then send what is not done yet",
    "status": "Read what became of a job's commands on OneNET",
    "verify": "Judge each device of a job against its verify: section",
    "cancel": "Cancel a job's commands still waiting on OneNET",
    "retry-failed": "Write the commands that did not get through as a job",
    "report": "Summarize a ledger, export its outcomes, or write HTML",
    "demo": "Run a job against the built-in emulator, end to end",
    "emulator": "Serve a local stand-in for OneNET, with its devices",
    "objects": "Show LwM2M objects and their resources",
    "devices": "List or export a product's devices from OneNET",
    "jobs": "List the jobs of a shared PostgreSQL ledger",
    "ledger": "Copy a job's ledger between SQLite and PostgreSQL",
}


class _Commands(click.Group):
    """A group whose commands (but validate) are imported when first asked for."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        known = super().get_command(ctx, cmd_name)
        if known is not None or cmd_name not in _COMMANDS:
            return known
        module, attr = _COMMANDS[cmd_name]
        command = getattr(importlib.import_module(module), attr)
        assert isinstance(command, click.Command) and command.name == cmd_name
        self.add_command(_described(command))
        return command


def _described(command: click.Command) -> click.Command:
    """``command`` with its summary and its help's closing text (exits.py), unless it has its
    own."""
    name = command.name or ""
    command.short_help = command.short_help or _SUMMARIES.get(name)
    command.epilog = command.epilog or epilog(name)
    return command


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True, help="More log lines on stderr (-v info, -vv debug).")
@click.version_option(version=__version__, prog_name="dispatcher")
def main(verbose: int) -> None:
    """Send cached LwM2M commands (execute, write, read, steps) to a whole NB-IoT fleet through
    OneNET."""
    console.setup_logging(verbose)


@main.command(short_help=_SUMMARIES["validate"], epilog=epilog("validate"))
@click.argument("jobfiles", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--at", "at_text", metavar="TIME", help="Check times against this planned start.")
@click.option("--strict", is_flag=True, help="Treat warnings (e.g. an IMEI check digit) as errors.")
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    help="Config file: the products the jobs name must be in it.",
)
@input_options
@interruptible
def validate(
    jobfiles: tuple[Path, ...],
    at_text: str | None,
    strict: bool,
    config_path: Path | None,
    reading: Reading,
) -> None:
    """Check job files without sending anything; report every problem as FILE:LINE: FIELD."""
    at = _planned_start(at_text)
    settings = None
    if config_path is not None:
        # Only with --config: the config's products are checked too.
        from dispatcher.cli.lanes import load_config

        settings = load_config(config_path)
    request = ValidateRequest(
        jobfiles,
        at=at,
        strict=strict,
        config=None if config_path is None else str(config_path),
        reading=reading,
    )
    invalid = False
    for checked in validate_files(settings, request, events=_Problems()):
        if checked.job is None or checked.result is None:
            console.error(str(checked.error))
            invalid = True
            continue
        console.validation(checked.job, checked.result, sample=checked.sample)
        if checked.job.query is not None:
            console.note(
                f"targets_query ({checked.job.query.describe()}): its devices are found at run"
                " time, from OneNET's device list"
                + (" (the commands were checked on a sample device)" if checked.sample else "")
            )
        if settings is None and console.products_line(checked.result):
            console.note("the products are checked against the config with --config")
        invalid = invalid or not checked.ok
    sys.exit(EXIT_INVALID if invalid else EXIT_OK)


class _Problems(Quiet):
    """Problems on the console as they are found; the rest as the library logs it."""

    def problem(self, problem: Problem) -> None:
        console.problem(problem)


def _planned_start(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        spec = parse_timespec(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--at") from exc
    if spec.at is None:
        raise click.BadParameter(
            "give an absolute time, e.g. 2026-12-01T02:00:00", param_hint="--at"
        )
    return spec.at

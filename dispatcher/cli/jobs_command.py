"""``dispatcher jobs``: the jobs of a shared PostgreSQL ledger, one line each: its state, its
commands by outcome, its last run and who is running it now (app/listing.py); ``--format json``
for scripts."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path

import click
import orjson
from rich.table import Table

from dispatcher.app.listing import list_jobs
from dispatcher.cli import console
from dispatcher.cli.exits import EXIT_OK, interruptible
from dispatcher.cli.lanes import load_config
from dispatcher.cli.ledger_param import LedgerParam
from dispatcher.ledger.address import LedgerAddress, parse_address
from dispatcher.times import BEIJING

__all__ = ["jobs"]

_OPEN = ("pending", "in_flight", "in_doubt")
_PROBLEMS = ("rejected", "failed", "expired", "skipped")


@click.command()
@click.option(
    "--ledger",
    "ledger_path",
    type=LedgerParam(),
    help="The PostgreSQL ledger, postgresql://user@host/dbname (default: the config's ledger.url).",
)
@click.option("--config", "config_path", type=click.Path(path_type=Path), help="Config file.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="table: one line a job; json: every figure, for scripts.",
)
@interruptible
def jobs(ledger_path: LedgerAddress | None, config_path: Path | None, fmt: str) -> None:
    """List the jobs of a shared PostgreSQL ledger: state, counts, last run, who holds each.

    A job is "running" while a dispatcher process holds it (its host:pid is shown), "broken off"
    when its last run never ended (killed, or its host lost: the next run resumes it),
    "stopped" when a rule or Ctrl-C stopped it, "unfinished" with commands still to send or
    settle, "done" otherwise.
    """
    if ledger_path is None:
        url = load_config(config_path).ledger.url
        ledger_path = None if url is None else parse_address(url)
    listed = list_jobs(ledger_path)
    if fmt == "json":
        rows = [
            {
                "job": j.name, "state": j.state, "job_file": j.job_path, "commands": j.total,
                "by_status": j.by_status, "runs": j.runs, "created_at": j.created_at,
                "last_started_at": j.last_started_at, "last_finished_at": j.last_finished_at,
                "last_stop_reason": j.last_stop_reason, "held_by": j.held_by,
            }
            for j in listed
        ]  # fmt: skip
        sys.stdout.write(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode() + "\n")
        sys.exit(EXIT_OK)
    if not listed:
        console.note(f"{ledger_path}: no job yet (dispatcher run --ledger URL#JOB makes one)")
        sys.exit(EXIT_OK)
    table = Table(title=f"{len(listed)} job{'s' if len(listed) != 1 else ''} in {ledger_path}")
    for name in ("job", "state", "commands", "accepted", "open", "problems", "last run"):
        table.add_column(name, justify="right" if name in _NUMBERS else "left", no_wrap=True)
    for j in listed:
        table.add_row(
            j.name,
            j.state,
            f"{j.total:,}",
            f"{j.by_status.get('accepted', 0):,}",
            f"{sum(j.by_status.get(s, 0) for s in _OPEN):,}",
            f"{sum(j.by_status.get(s, 0) for s in _PROBLEMS):,}",
            _when(j.last_started_at),
        )
    console.show(table)
    console.show("last run: when it started, UTC+8")
    for j in listed:  # a holder is long (host:pid, from where, since when): a line of its own
        if j.held_by is not None:
            console.show(f"{j.name}: held by {j.held_by}")
    sys.exit(EXIT_OK)


_NUMBERS = frozenset({"commands", "accepted", "open", "problems"})


def _when(at: float | None) -> str:
    """A time in OneNET's zone, to the minute ('' for none)."""
    if at is None:
        return ""
    return datetime.fromtimestamp(at, BEIJING).strftime("%Y-%m-%d %H:%M")

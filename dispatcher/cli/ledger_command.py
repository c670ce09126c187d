"""``dispatcher ledger``: a ledger as a whole; ``ledger copy SRC DST`` copies one job's ledger
exactly between a SQLite file and a job of a PostgreSQL ledger (app/copying.py)."""

from __future__ import annotations

import sys

import click

from dispatcher.app.copying import copy_ledger, describe
from dispatcher.cli import console
from dispatcher.cli.exits import EXIT_OK, epilog, interruptible
from dispatcher.cli.ledger_param import LedgerParam
from dispatcher.ledger.address import LedgerAddress, PostgresAddress

__all__ = ["ledger"]


@click.group()
def ledger() -> None:
    """Work on a ledger as a whole: copy one job's ledger between SQLite and PostgreSQL."""


@ledger.command(
    short_help="Copy one job's ledger, exactly, into a new one", epilog=epilog("ledger copy")
)
@click.argument("source", metavar="SRC", type=LedgerParam())
@click.argument("destination", metavar="DST", type=LedgerParam())
@interruptible
def copy(source: LedgerAddress, destination: LedgerAddress) -> None:
    """Copy one job's ledger, exactly, from SRC into DST: a file, or
    postgresql://user@host/dbname#job.

    Every command with its outcome, every run, canary verdict, frozen target and verify record,
    and the job it belongs to, value by value, numbers kept: a run resumes the copy where the
    source stood. DST must be new (or hold nothing). Both are locked meanwhile: a ledger a run
    is writing is refused. The copy is written in one go and read back before it is kept:
    a failure leaves DST as it was. Without #job, SRC is the database's only job, and DST
    is named as the source's job.
    """
    copied = copy_ledger(source, destination)
    job = ""
    if isinstance(copied.destination, PostgresAddress) and isinstance(destination, PostgresAddress):
        job = f" (job {copied.destination.job})" if destination.job is None else ""
    console.note(
        f"copied {describe(copied.digest)} from {copied.source} to {copied.destination}{job};"
        " the copy reads back the same"
    )
    sys.exit(EXIT_OK)

"""``dispatcher ledger copy``: one job's ledger copied exactly between a SQLite file and a job of a
PostgreSQL ledger (either way, or between two of a kind), then checked.

Exactly: every table, row and value as it is (ledger/copying.py says which), every number kept,
so that the copy answers every read as the source does and a run resumes it where the source
stood. Both ledgers are opened for writing, so that their locks keep every run out: a source a
run is writing is refused with who holds it (LedgerLockedError), and nothing writes it while it is
read (the source itself is written nothing, but an older ledger's schema is upgraded in place,
as any command that writes it does). The destination must be new, or hold nothing; it is written
in one transaction and read back in it, compared with the source row by row (a digest) before it
is committed: a failure or a difference leaves it as it was, and one made here is removed.

May import: errors, ledger.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from dispatcher.errors import LedgerError
from dispatcher.ledger.address import LedgerAddress, PostgresAddress
from dispatcher.ledger.copying import CopySide, Digest, LedgerDump, Tally, digest_of, tallied
from dispatcher.ledger.opening import discard_ledger, ledger_exists, open_copy_side

__all__ = ["Copied", "copy_ledger", "describe"]

_LEDGER_SUFFIX: Final = ".ledger.db"
_JOB_SUFFIXES: Final = (".yaml", ".yml", ".csv", ".xlsx")


@dataclass(frozen=True, slots=True)
class Copied:
    """A copy made and checked: from where, to where (its job named), and what it holds."""

    source: LedgerAddress
    destination: LedgerAddress
    digest: Digest


def copy_ledger(source: LedgerAddress, destination: LedgerAddress) -> Copied:
    """Copy the ledger at ``source`` into ``destination`` (new, or holding nothing), exactly,
    and check it (module docstring); LedgerError when refused or when it fails."""
    source = _resolved(source)
    _refuse_same(source, destination)
    with contextlib.closing(open_copy_side(source, existing=True)) as src:
        if isinstance(destination, PostgresAddress) and destination.job is None:
            destination = destination.with_job(_job_name(src, source))
            _refuse_same(source, destination)
        existed = ledger_exists(destination)
        dst = open_copy_side(destination, existing=False)
        try:
            _refuse_held(dst)
            tally = Tally()
            dump = tallied(src.dump(), tally)
            try:
                dst.load(dump, lambda back: _same(tally, back, destination))
            finally:
                dump.close()
        except BaseException as exc:
            dst.close()
            if not existed:  # made here, and nothing was kept in it: not left behind
                try:
                    discard_ledger(destination)
                except LedgerError as also:
                    exc.add_note(f"{destination} was made for the copy, and is left: {also}")
            raise
        dst.close()
    return Copied(source, destination, tally.digest())


def _resolved(source: LedgerAddress) -> LedgerAddress:
    """The source with its job: a PostgreSQL ledger's only one when none is named."""
    if isinstance(source, PostgresAddress) and source.job is None:
        from dispatcher.ledger.postgres_jobs import only_job  # psycopg only when used

        return only_job(source)
    return source


def _refuse_same(source: LedgerAddress, destination: LedgerAddress) -> None:
    """Refuse a copy of a ledger onto itself (another name of the same file too)."""
    same = False
    if isinstance(source, Path) and isinstance(destination, Path):
        same = source.resolve() == destination.resolve() or (
            source.exists() and destination.exists() and os.path.samefile(source, destination)
        )
    elif isinstance(source, PostgresAddress) and isinstance(destination, PostgresAddress):
        same = (source.database, source.job) == (destination.database, destination.job)
    if same:
        raise LedgerError(
            f"{source} and {destination} are the same ledger: name another file, or another"
            " job (postgresql://…/dbname#job), to copy it into"
        )


def _job_name(src: CopySide, source: LedgerAddress) -> str:
    """The job a copy into a PostgreSQL ledger without ``#job`` writes: the source's. A file's
    job is named as ``dispatcher run`` names it in a PostgreSQL ledger (the job file's name
    without its suffix), so that a run of that job file with ``ledger.url`` resumes the copy."""
    if isinstance(source, PostgresAddress) and source.job is not None:
        return source.job
    record = src.dump().job
    if record is not None and record.path:
        return Path(record.path).stem
    name = Path(str(source)).name.removesuffix(_LEDGER_SUFFIX)
    return Path(name).stem if Path(name).suffix.lower() in _JOB_SUFFIXES else name


def _refuse_held(dst: CopySide) -> None:
    """Refuse a destination that holds anything but (at most) a job record."""
    held = {name: n for name, n in dst.held().items() if n}
    if held:
        what = ", ".join(f"{n:,} {_NOUNS[name][n != 1]}" for name, n in held.items())
        raise LedgerError(
            f"{dst.path} already holds a ledger ({what}): a copy goes into a new ledger only;"
            " name a file that does not exist yet, or a new job (postgresql://…/dbname#job)"
        )


def _same(tally: Tally, back: LedgerDump, destination: LedgerAddress) -> None:
    """Refuse (before it is committed) a copy whose destination, read back, differs from what
    was read from the source."""
    sent, found = tally.digest(), digest_of(back)
    if sent != found:
        raise LedgerError(
            f"the copy into {destination} does not read back as the source was read (source:"
            f" {describe(sent)}; copy: {describe(found)}; digests {sent.sha256[:12]} and"
            f" {found.sha256[:12]}): nothing was kept; this is a bug, please report it"
        )


_NOUNS: Final = {
    "commands": ("command", "commands"),
    "runs": ("run", "runs"),
    "verdicts": ("canary verdict", "canary verdicts"),
    "frozen_targets": ("frozen target", "frozen targets"),
    "verify_results": ("verify result", "verify results"),
    "verify_device_ids": ("device id", "device ids"),
}


def describe(digest: Digest) -> str:
    """What a ledger holds, in words: ``12 commands, 2 runs, 0 canary verdicts, …``."""
    return ", ".join(f"{n:,} {_NOUNS[name][n != 1]}" for name, n in digest.counts)

"""How a job differs from an in-memory ledger, and bringing the ledger in line: identity.compare's
rules over a :class:`~dispatcher.ledger.memory_table.Table`.

A command whose key is an active row's but whose other fields differ is *changed* (applied: the row
is kept, retired, under ``<key>~<n>`` and the edited command goes in, pending); an active row whose
key is no longer in the job is *removed*; a removed row listed again as it was (or the job gone
back to a version the ledger holds, with nothing new reaching OneNET) has *returned*; the rest are
*new*. The same rule (identity.judge) as the SQLite ledger's, with this table's edits.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from dataclasses import replace
from itertools import islice
from typing import TYPE_CHECKING, Final

from dispatcher.ledger.columns import insert_params
from dispatcher.ledger.identity import Found, JobDiff, differing, judge
from dispatcher.ledger.memory_table import Table
from dispatcher.ledger.records import Retired, Row

if TYPE_CHECKING:
    from dispatcher.model.command import Command

__all__ = ["compare"]

_CHUNK: Final = 500  # commands per transaction when applying, as the SQLite ledger does


def compare(table: Table, commands: Iterable[Command], *, apply: bool, sample: int) -> JobDiff:
    """Compare the job with the ledger (see the module); ``apply`` brings the ledger in line."""
    found = Found(sample)
    listed: set[str] = set()
    stream = iter(commands)
    while chunk := tuple(islice(stream, _CHUNK)):
        with _step(table, apply):
            _compare_chunk(table, chunk, found, listed, apply)
    with _step(table, apply):
        gone = [r for r in table if r.retired is None and r.key not in listed]
        if apply:
            for row in gone:
                table.put(replace(row, retired=Retired.REMOVED))
    return JobDiff(
        found.changed, len(gone), found.returned, found.new, found.moved,
        tuple(found.examples), tuple(gone[: max(sample, 0)]), apply, found.at_onenet,
    )  # fmt: skip


@contextlib.contextmanager
def _step(table: Table, apply: bool) -> Iterator[None]:
    """One transaction when applying: all of it kept, or none."""
    saved = table.snapshot() if apply else None
    try:
        yield
    except BaseException:
        if saved is not None:
            table.restore(saved)
        raise


def _compare_chunk(
    table: Table, chunk: tuple[Command, ...], found: Found, listed: set[str], apply: bool
) -> None:
    by_key: dict[str, Command] = {}
    for c in chunk:
        insert_params(c)  # refuses a command without a key
        by_key.setdefault(c.key, c)
    keys = [k for k in by_key if k not in listed]  # listed twice: only the first copy counts
    listed.update(keys)
    rows = {k: row for k in keys if (row := table.get(k)) is not None}
    edits = _TableEdits(table)
    for key in keys:
        judge(rows.get(key), by_key[key], found, edits, apply=apply)


class _TableEdits:
    """The edits of ``identity.judge`` on an in-memory table."""

    def __init__(self, table: Table) -> None:
        self.table = table

    def earlier_version(self, row: Row, command: Command) -> Row | None:
        """A retired earlier version of the row (``<key>~<n>``) with exactly the command's
        fields."""
        low, high = f"{row.key}~", f"{row.key}~~"
        for earlier in self.table:
            if low < earlier.key < high and not differing(earlier, command):
                return earlier
        return None

    def restore(self, active: Row, earlier: Row, command: Command) -> None:
        """Retire the active row under the next free suffix; give its key back to ``earlier``."""
        self._retire_aside(active.key)
        now = self.table.by_seq[earlier.seq]
        self.table.put(_placed(now, command, retired=None, key=active.key))

    def replace(self, row: Row, command: Command) -> None:
        """Keep the row aside (retired), and insert the edited command."""
        self._retire_aside(row.key)
        self.table.insert(command)

    def take_back(self, row: Row, command: Command) -> None:
        """The retired row active again, at the job's place."""
        self.table.put(_placed(self._now(row), command, retired=None))

    def move(self, row: Row, command: Command) -> None:
        """The row at the job's place."""
        now = self._now(row)
        self.table.put(_placed(now, command, retired=now.retired))

    def _now(self, row: Row) -> Row:
        """The row as it is now (the chunk's rows were read before its writes)."""
        return self.table.by_seq[row.seq]

    def _retire_aside(self, key: str) -> None:
        """Move the row of ``key``, as it is, to the next free ``<key>~<n>`` (retired if
        active)."""
        n = 1
        while self.table.get(f"{key}~{n}") is not None:
            n += 1
        row = self.table.get(key)
        if row is not None:
            aside = f"{key}~{n}"
            retired = row.retired or Retired.CHANGED
            aside_row = replace(row, key=aside, command=replace(row.command, key=aside))
            self.table.put(replace(aside_row, retired=retired))


def _placed(row: Row, command: Command, *, retired: Retired | None, key: str | None = None) -> Row:
    """The row at the job file's place of ``command`` (its source and line), under ``key``."""
    key = row.key if key is None else key
    placed = replace(row.command, key=key, source=command.source, line=command.line)
    return replace(row, key=key, command=placed, retired=retired)

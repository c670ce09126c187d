"""One job's ledger as neutral data, to copy it whole between a SQLite file and a PostgreSQL job:
the job record and, table by table, the column names and the rows, streamed in key order.

A copy never goes through :class:`~dispatcher.ledger.store.LedgerStore` (that would replay the
lifecycle and number rows anew): each implementation dumps its tables as they are and loads them
back value by value (sqlite_copy.py, postgres_copy.py), every number (``seq``, run and verdict
ids, a frozen device's place) kept. The two schemas hold the same columns (schema.py and
postgres_schema.py, less PostgreSQL's ``job_id``); :data:`TABLES` names them, each with its kind,
and the tests hold both schemas to it. A value is copied as it is: a NULL stays NULL where the
other side has a default, and a REAL is the same 64-bit float on both sides.

What is not a job's: the schema version (each ledger keeps its own), PostgreSQL's ``jobs.id`` and
``created_at`` (the destination's), the send queue (a temporary table), and any other ``meta``
name of a SQLite file (the rollout flags schema 7 took over into ``canary``).

A :class:`Tally` counts and hashes every row it sees, so that a copy can be checked against the
destination read back (:func:`tallied`, :meth:`Tally.digest`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Final, Literal, Protocol

from dispatcher.ledger.address import LedgerAddress
from dispatcher.ledger.identity import JobRecord

__all__ = [
    "PAGE",
    "TABLES",
    "CopySide",
    "Digest",
    "LedgerDump",
    "Rows",
    "Table",
    "TableDump",
    "Tally",
    "digest_of",
    "tallied",
]

Kind = Literal["int", "real", "text"]
PAGE: Final = 2000  # rows read or written at a time


@dataclass(frozen=True, slots=True)
class Table:
    """One table of a job's ledger: its columns (each with its kind) and its key, which orders
    its rows the same on both sides (SQLite's BINARY and PostgreSQL's "C" collation both compare
    bytes)."""

    name: str
    columns: tuple[tuple[str, Kind], ...]
    key: tuple[str, ...]

    @property
    def names(self) -> tuple[str, ...]:
        """The column names, in order."""
        return tuple(name for name, _ in self.columns)


def _columns(names: str, ints: str = "", reals: str = "") -> tuple[tuple[str, Kind], ...]:
    """Columns from their names (each a text column unless it is one of ``ints`` or ``reals``)."""
    kinds: dict[str, Kind] = {
        **dict.fromkeys(ints.split(), "int"),
        **dict.fromkeys(reals.split(), "real"),
    }
    return tuple((name, kinds.get(name, "text")) for name in names.split())


# Every table of a job's ledger, in the order a copy writes them, their columns in SQLite's order.
TABLES: Final = (
    Table(
        "commands",
        _columns(
            "seq key imei obj_id obj_inst_id res_id args valid_time expired_time retry timeout"
            " trigger_msg source line status errno error uuid attempts first_attempt_at"
            " last_attempt_at latency_ms sent_valid_time sent_expired_time reconciled run_id"
            " first_server_at last_server_at retired send_status confirm_status send_time"
            " confirm_time cmd_result status_checked_at cancelled_at cancel_error retried_in op"
            " mode step after_key product canary",
            ints="seq obj_id obj_inst_id res_id retry timeout trigger_msg line errno attempts"
            " reconciled run_id send_status mode step canary",
            reals="first_attempt_at last_attempt_at latency_ms first_server_at last_server_at"
            " status_checked_at cancelled_at",
        ),
        ("seq",),
    ),
    Table(
        "runs",
        _columns(
            "id job_path started_at finished_at settings summary stop_reason",
            ints="id",
            reals="started_at finished_at",
        ),
        ("id",),
    ),
    Table(
        "verdicts",
        _columns("id product passed_at judged covered", ints="id covered", reals="passed_at"),
        ("id",),
    ),
    Table("frozen_targets", _columns("pos imei device_id", ints="pos"), ("pos",)),
    Table(
        "verify_results",
        _columns("imei product state value read_at source reason", reals="read_at"),
        ("imei", "product"),
    ),
    Table("verify_device_ids", _columns("imei device_id"), ("imei",)),
)

Rows = Iterable[tuple[object, ...]]


@dataclass(frozen=True, slots=True)
class TableDump:
    """One table's rows, in key order, as a stream: read once."""

    table: Table
    rows: Rows


@dataclass(frozen=True, slots=True)
class LedgerDump:
    """A job's ledger: its job record and every table of :data:`TABLES`, in that order, each a
    stream over the open ledger (read them in order, once)."""

    job: JobRecord | None
    tables: tuple[TableDump, ...]

    def close(self) -> None:
        """Stop reading: close every stream not read to its end, before its ledger is closed
        (a generator closed later would clean up on a closed connection)."""
        for part in self.tables:
            if isinstance(part.rows, Generator):
                part.rows.close()


@dataclass(frozen=True, slots=True)
class Digest:
    """What a ledger holds, in short: the job record, each table's rows counted, and one SHA-256
    over every value of every row (its type included: 1 is not 1.0, a float by its bits)."""

    job: JobRecord | None
    counts: tuple[tuple[str, int], ...]
    sha256: str

    def count(self, table: str) -> int:
        """The rows of ``table``."""
        return dict(self.counts)[table]


@dataclass(slots=True)
class Tally:
    """Counts and hashes the rows streamed through :func:`tallied`."""

    job: JobRecord | None = None
    counts: dict[str, int] = field(default_factory=dict)
    _hash: hashlib._Hash = field(default_factory=hashlib.sha256)

    def see(self, table: str, rows: Rows) -> Iterator[tuple[object, ...]]:
        """``rows``, each counted and hashed as it passes."""
        self.counts.setdefault(table, 0)
        self._hash.update(f"\x00{table}\n".encode())
        try:
            for row in rows:
                self.counts[table] += 1
                self._hash.update(_canonical(row))
                yield row
        finally:
            if isinstance(rows, Generator):
                rows.close()

    def digest(self) -> Digest:
        """What was seen so far."""
        return Digest(self.job, tuple(self.counts.items()), self._hash.hexdigest())


def _canonical(row: tuple[object, ...]) -> bytes:
    """A row as bytes that differ whenever a value or its type does (a float by its bits:
    ``float.hex``)."""
    parts = [v.hex() if isinstance(v, float) else repr(v) for v in row]
    types = "".join(type(v).__name__[0] for v in row)
    return "\x1f".join((types, *parts)).encode() + b"\n"


def tallied(dump: LedgerDump, tally: Tally) -> LedgerDump:
    """``dump``, with ``tally`` seeing its job record and every row as it is read."""
    tally.job = dump.job
    return LedgerDump(
        dump.job, tuple(TableDump(t.table, tally.see(t.table.name, t.rows)) for t in dump.tables)
    )


def digest_of(dump: LedgerDump) -> Digest:
    """Read ``dump`` whole (a page at a time: memory stays flat) into its digest."""
    tally = Tally()
    seen = tallied(dump, tally)
    try:
        for part in seen.tables:
            for _ in part.rows:
                pass
    finally:
        seen.close()
    return tally.digest()


class CopySide(Protocol):
    """A ledger opened whole to copy from or into, its writer's lock held (opening.py)."""

    @property
    def path(self) -> LedgerAddress:
        """Where it is."""
        ...

    def held(self) -> dict[str, int]:
        """How many rows each table of :data:`TABLES` holds."""
        ...

    def dump(self) -> LedgerDump:
        """The job record and every table, streamed a page at a time."""
        ...

    def load(self, dump: LedgerDump, check: Callable[[LedgerDump], None]) -> None:
        """Write ``dump`` into this (empty) ledger in one transaction: its job record in place of
        any, every row as it is; then ``check`` this ledger read back, in the same transaction:
        if it raises, nothing is kept."""
        ...

    def close(self) -> None:
        """Close it, releasing its lock."""
        ...

"""The ledger's verify records: what ``dispatcher verify`` found each device of the job reads
(``VerifyResult``, one per device and product, the latest kept), and the platform device ids it
looked up by IMEI (asked once, kept for the next verify).

In the SQLite ledger both are tables created on first write (as the send queue's is), so a
ledger that never was verified has neither, and reading them gives nothing; ``SqliteVerify`` and
``MemoryVerify`` are the two ledgers' share of the LedgerStore methods (``record_verify``,
``verify_results``, ``record_device_ids``, ``device_ids``).
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

__all__ = ["MemoryVerify", "SqliteVerify", "VerifyResult", "VerifyState", "create"]

_RESULTS: Final = "verify_results"
_IDS: Final = "verify_device_ids"
_CREATE: Final = (
    f"CREATE TABLE IF NOT EXISTS {_RESULTS} (imei TEXT NOT NULL, product TEXT NOT NULL,"
    " state TEXT NOT NULL, value TEXT, read_at REAL, source TEXT NOT NULL,"
    " reason TEXT NOT NULL, PRIMARY KEY (imei, product)) WITHOUT ROWID",
    f"CREATE TABLE IF NOT EXISTS {_IDS} (imei TEXT PRIMARY KEY, device_id TEXT NOT NULL)"
    " WITHOUT ROWID",
)
_COLUMNS: Final = "imei, product, state, value, read_at, source, reason"


class VerifyState(StrEnum):
    """Where a device stands against the job's ``verify:``."""

    ON_TARGET = "on_target"  # it reads a good value
    NOT_YET = "not_yet"  # it reads another value (kept, and shown)
    FAILED = "failed"  # a step of it was rejected, failed, expired, held back or skipped
    NEVER_SEEN = "never_seen"  # no value read, and nothing failed


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """One device's verdict: what it reads (``value``, read at ``read_at``, unix seconds), from
    where (``source``: command or datapoints), and why it is where it is (``reason``)."""

    imei: str
    product: str  # "": the default one
    state: VerifyState
    value: str | None
    read_at: float | None
    source: str
    reason: str = ""


class SqliteVerify:
    """The SQLite ledger's verify methods (mixed into ``Ledger``, whose reads and writes they
    use)."""

    def _read(self, what: str) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError  # the Ledger's

    def _write(self, what: str) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError  # the Ledger's

    def record_verify(self, results: Sequence[VerifyResult]) -> None:
        """Each device's verdict, in place of its last one, in one transaction."""
        with self._write("record the verify results") as conn:
            create(conn)
            conn.executemany(
                f"INSERT OR REPLACE INTO {_RESULTS} ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(r.imei, r.product, r.state.value, r.value, r.read_at, r.source, r.reason)
                 for r in results],
            )  # fmt: skip

    def verify_results(self) -> list[VerifyResult]:
        """Every device's latest verdict, by imei then product (none: never verified)."""
        with self._read("read the verify results") as conn:
            if not _exists(conn, _RESULTS):
                return []
            rows = conn.execute(f"SELECT {_COLUMNS} FROM {_RESULTS} ORDER BY imei, product")
            return [
                VerifyResult(imei, product, VerifyState(state), value, read_at, source, reason)
                for imei, product, state, value, read_at, source, reason in rows
            ]

    def record_device_ids(self, ids: Mapping[str, str]) -> None:
        """Platform device ids by IMEI (as GET /devices/getbyimei gave them), kept."""
        with self._write("record device ids") as conn:
            create(conn)
            conn.executemany(f"INSERT OR REPLACE INTO {_IDS} VALUES (?, ?)", ids.items())

    def device_ids(self) -> dict[str, str]:
        """The platform device ids kept, by IMEI."""
        with self._read("read device ids") as conn:
            if not _exists(conn, _IDS):
                return {}
            return dict(conn.execute(f"SELECT imei, device_id FROM {_IDS}"))


class MemoryVerify:
    """The in-memory ledger's verify methods (mixed into ``MemoryLedger``)."""

    _verified: dict[tuple[str, str], VerifyResult] | None = None
    _ids: dict[str, str] | None = None

    def record_verify(self, results: Sequence[VerifyResult]) -> None:
        """Each device's verdict, in place of its last one."""
        held = dict(self._verified or {})
        held.update(((r.imei, r.product), r) for r in results)
        self._verified = held  # all or nothing: the new dict replaces the old at once

    def verify_results(self) -> list[VerifyResult]:
        """Every device's latest verdict, by imei then product."""
        return [r for _, r in sorted((self._verified or {}).items())]

    def record_device_ids(self, ids: Mapping[str, str]) -> None:
        """Platform device ids by IMEI, kept."""
        self._ids = {**(self._ids or {}), **ids}

    def device_ids(self) -> dict[str, str]:
        """The platform device ids kept, by IMEI."""
        return dict(self._ids or {})


def create(conn: sqlite3.Connection) -> None:
    """Make the verify tables, if missing (a ledger has none until its first verify)."""
    for statement in _CREATE:
        conn.execute(statement)


def _exists(conn: sqlite3.Connection, name: str) -> bool:
    found: Iterable[object] = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
    )
    return any(True for _ in found)

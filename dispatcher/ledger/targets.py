"""The frozen fleet: the devices a job's ``targets_query`` found at its first run, kept in the
ledger (each IMEI with the platform's id for it), so that every later run sends to that same list
whatever the query would find today.

A device is frozen once, in the order it was found; freezing again adds only the devices not
frozen yet (``run --refresh-targets``) and never removes one. In the SQLite ledger the list is
the table ``frozen_targets``, made on the first freeze (as queue.py makes its table, but in the
file): a ledger of a job without a query never has it, and an older dispatcher reading the file
ignores it. The in-memory ledger keeps the same list (``MemoryTargets``); the contract suite
holds both to it.

May import: errors, ledger's other modules.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Final, Protocol

__all__ = ["FrozenTarget", "MemoryTargets", "SqliteTargets", "create", "freeze", "frozen"]

_TABLE: Final = "frozen_targets"
_CREATE: Final = (
    f"CREATE TABLE IF NOT EXISTS {_TABLE}"
    " (pos INTEGER PRIMARY KEY, imei TEXT NOT NULL UNIQUE, device_id TEXT NOT NULL)"
)


@dataclass(frozen=True, slots=True)
class FrozenTarget:
    """One device of the frozen list: its IMEI and the platform's id for it (the legacy numeric
    id, or the newer platform's device name; "" when not known)."""

    imei: str
    device_id: str = ""


def freeze(conn: sqlite3.Connection, targets: Sequence[FrozenTarget]) -> int:
    """Add the devices of ``targets`` not frozen yet, in order (inside the caller's
    transaction); how many were added."""
    create(conn)
    before = conn.total_changes
    conn.executemany(
        f"INSERT OR IGNORE INTO {_TABLE} (imei, device_id) VALUES (?, ?)",
        ((t.imei, t.device_id) for t in targets),
    )
    return conn.total_changes - before


def create(conn: sqlite3.Connection) -> None:
    """Make the frozen list's table, if missing (a ledger has none until its first freeze)."""
    conn.execute(_CREATE)


def frozen(conn: sqlite3.Connection) -> list[FrozenTarget]:
    """Every frozen device, in the order it was frozen (none: the ledger has no frozen list)."""
    found = conn.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (_TABLE,)).fetchone()
    if found is None:
        return []
    cur = conn.execute(f"SELECT imei, device_id FROM {_TABLE} ORDER BY pos")
    return [FrozenTarget(imei, device_id) for imei, device_id in cur]


class _Connected(Protocol):
    def _read(self, what: str) -> AbstractContextManager[sqlite3.Connection]: ...

    def _write(self, what: str) -> AbstractContextManager[sqlite3.Connection]: ...


class SqliteTargets:
    """The SQLite ledger's frozen list (a base of ``Ledger``)."""

    def freeze_targets(self: _Connected, targets: Sequence[FrozenTarget]) -> int:
        """Freeze the devices not frozen yet, in order; how many were added."""
        with self._write("freeze the targets") as conn:
            return freeze(conn, targets)

    def frozen_targets(self: _Connected) -> list[FrozenTarget]:
        """The frozen devices, in the order they were frozen (none: no frozen list)."""
        with self._read("read the frozen targets") as conn:
            return frozen(conn)


class _Held(Protocol):
    _frozen: dict[str, FrozenTarget]  # by IMEI, in the order frozen

    def _read(self) -> tuple[object, object]: ...


class MemoryTargets:
    """The in-memory ledger's frozen list (a base of ``MemoryLedger``, which holds ``_frozen``)."""

    def freeze_targets(self: _Held, targets: Sequence[FrozenTarget]) -> int:
        """Freeze the devices not frozen yet, in order; how many were added."""
        self._read()  # a closed ledger refuses, as for any other call
        before = len(self._frozen)
        for target in targets:
            self._frozen.setdefault(target.imei, target)
        return len(self._frozen) - before

    def frozen_targets(self: _Held) -> list[FrozenTarget]:
        """The frozen devices, in the order they were frozen (none: no frozen list)."""
        self._read()
        return list(self._frozen.values())

"""The figures a report reads from the ledger: counts in one SQL pass, errno groups, latency ranks.

Each reads the job's (active) rows only, with a small page cache so that memory stays flat however
large the ledger; the SQLite ledger (sqlite.py) answers with these.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Final, Protocol

from dispatcher.ledger.delivery import DeliveryBreakdown, breakdown
from dispatcher.ledger.records import LedgerStats, Retired
from dispatcher.ledger.schema import (
    ACTIVE,
    ACTIVE_STATS,
    CACHE,
    SCAN_CACHE,
    small_cache,
    sqlite_error,
)

__all__ = ["SqliteFigures", "errno_groups", "latencies_at", "retired_counts", "stats"]

_FETCH: Final = 10_000  # rows per fetchmany of the sorted latencies


def stats(conn: sqlite3.Connection) -> LedgerStats:
    """Figures over the job's (active) rows in one SQL pass."""
    with small_cache(conn):
        t, out, first, last, att, retries, rec, lat = conn.execute(ACTIVE_STATS).fetchone()
    return LedgerStats(int(t), int(out), first, last, int(att), int(retries), int(rec), lat)


def retired_counts(conn: sqlite3.Connection) -> dict[str, int]:
    """How many rows are retired, by why: {'removed': n, 'changed': m}."""
    counts = dict.fromkeys((r.value for r in Retired), 0)
    sql = "SELECT retired, COUNT(*) FROM commands WHERE retired IS NOT NULL GROUP BY retired"
    with small_cache(conn):
        for why, n in conn.execute(sql):
            counts[why] = n
    return counts


def product_counts(conn: sqlite3.Connection) -> dict[str, dict[str, int]]:
    """The active rows by product ('': the default one) and status: {product: {status: n}}."""
    sql = (
        "SELECT COALESCE(product, ''), status, COUNT(*) FROM commands WHERE retired IS NULL"
        " GROUP BY 1, 2 ORDER BY 1"
    )
    counts: dict[str, dict[str, int]] = {}
    with small_cache(conn):
        for product, status, n in conn.execute(sql):
            counts.setdefault(product, {})[status] = n
    return counts


def errno_groups(conn: sqlite3.Connection) -> list[tuple[int, str, int]]:
    """(errno, error text, count) for every errno of an active row, most common text first."""
    return conn.execute(
        "SELECT errno, error, COUNT(*) AS n FROM commands WHERE errno IS NOT NULL"
        f" AND {ACTIVE} GROUP BY errno, error ORDER BY errno, n DESC, error"
    ).fetchall()


def latencies_at(conn: sqlite3.Connection, path: Path, ranks: Sequence[int]) -> list[float]:
    """Active rows' latencies at 1-based ``ranks`` in ascending order, from one sorted pass."""
    wanted = sorted(set(ranks))
    found: dict[int, float] = {}
    seen = 0
    cur = conn.cursor()
    try:
        conn.execute(f"PRAGMA cache_size = {SCAN_CACHE}")  # the sort spills to disk beyond it
        cur.execute(
            f"SELECT latency_ms FROM commands WHERE latency_ms IS NOT NULL AND {ACTIVE}"
            " ORDER BY latency_ms"
        )
        while wanted and (chunk := cur.fetchmany(_FETCH)):
            while wanted and wanted[0] <= seen + len(chunk):
                rank = wanted.pop(0)
                found[rank] = chunk[rank - seen - 1][0]
            seen += len(chunk)
    except sqlite3.Error as exc:
        raise sqlite_error(path, "read latencies", exc) from exc
    finally:
        cur.close()
        conn.execute(f"PRAGMA cache_size = {CACHE}")
    return [found[r] for r in ranks]


class _Connected(Protocol):
    path: Path

    def _read(self, what: str) -> AbstractContextManager[sqlite3.Connection]: ...

    def _live(self) -> sqlite3.Connection: ...


class SqliteFigures:
    """The SQLite ledger's figures for reports (a base of ``Ledger``)."""

    def stats(self: _Connected) -> LedgerStats:
        """Figures over the job's (active) rows in one SQL pass."""
        with self._read("compute figures") as conn:
            return stats(conn)

    def retired_counts(self: _Connected) -> dict[str, int]:
        """How many rows are retired, by why: {'removed': n, 'changed': m}."""
        with self._read("count retired commands") as conn:
            return retired_counts(conn)

    def product_counts(self: _Connected) -> dict[str, dict[str, int]]:
        """The job's commands by product ('': the default one) and status."""
        with self._read("count commands by product") as conn:
            return product_counts(conn)

    def errno_groups(self: _Connected) -> list[tuple[int, str, int]]:
        """(errno, error text, count) for every errno of an active row, most common text first."""
        with self._read("count errnos") as conn:
            return errno_groups(conn)

    def latencies_at(self: _Connected, ranks: Sequence[int]) -> list[float]:
        """Active rows' latencies at 1-based ``ranks`` in ascending order, from one sorted pass."""
        return latencies_at(self._live(), self.path, ranks)

    def delivery_breakdown(self: _Connected) -> DeliveryBreakdown:
        """The job's accepted commands and devices by delivery state (delivery.py)."""
        with self._read("count deliveries") as conn:
            return breakdown(conn)

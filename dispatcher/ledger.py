"""The results ledger: one SQLite row per command, written in batches, resumable and crash-safe.

A command is registered (``pending``) before it is sent, marked ``in_flight`` with the exact times
that go on the wire *before* its request leaves (the crash-safety point: a row still in flight after
a crash is one whose request may have reached OneNET), and given its outcome when the answer comes.
Each batch is one transaction. The file is owner-only (0600), in WAL mode, and one process at a time
may write it: an exclusive ``flock`` on the sibling ``<ledger>.lock`` file.

A :class:`Ledger` is not thread-safe: use it from one thread at a time (the runner gives it a
dedicated thread).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import re
import sqlite3
import time
from collections.abc import Callable, Collection, Generator, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from dispatcher.errors import LedgerError
from dispatcher.ledger_file import CACHE, ROW_COLUMNS, connect, lock, schema_version
from dispatcher.ledger_records import (
    FINAL,
    TO_SEND,
    InFlight,
    LedgerStats,
    Result,
    Row,
    RunInfo,
    Status,
)

if TYPE_CHECKING:
    from dispatcher.jobs import Command

__all__ = [
    "FINAL",
    "TO_SEND",
    "InFlight",
    "Ledger",
    "LedgerStats",
    "Result",
    "Row",
    "RunInfo",
    "Status",
]

log = logging.getLogger(__name__)

_SCAN_CACHE: Final = -2000  # KiB for whole-ledger reads and sorts (reports)
_STATUS: Final = {s.value: s for s in Status}
_CHUNK: Final = 500  # keys per `IN (...)`, well under SQLite's variable limit (999 before 3.32)
_FETCH: Final = 1000  # rows per fetchmany
_SECRET_NAME: Final = re.compile(r"(api_?key|secret|password|token)$")


_SELECT: Final = f"SELECT {', '.join(ROW_COLUMNS)} FROM commands"
_INSERT: Final = (
    "INSERT INTO commands (key, imei, obj_id, obj_inst_id, res_id, args, valid_time,"
    " expired_time, retry, timeout, trigger_msg, source, line)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(key) DO NOTHING"
)
_MARK: Final = (
    "UPDATE commands SET status = 'in_flight', first_attempt_at = COALESCE(first_attempt_at, ?1),"
    " last_attempt_at = ?1, sent_valid_time = ?2, sent_expired_time = ?3, run_id = ?4"
    " WHERE key = ?5"
)
_RECORD: Final = (
    "UPDATE commands SET status = ?1, errno = ?2, error = ?3, uuid = ?4,"
    " attempts = attempts + ?5, first_attempt_at = COALESCE(first_attempt_at, ?6),"
    " last_attempt_at = CASE WHEN ?5 > 0 OR last_attempt_at IS NULL THEN ?6"
    " ELSE last_attempt_at END, latency_ms = ?7, reconciled = ?8 WHERE key = ?9"
)
_STATS: Final = (
    "SELECT COUNT(*), TOTAL(status NOT IN ('pending', 'in_flight')), MIN(first_attempt_at),"
    " MAX(last_attempt_at), TOTAL(attempts), TOTAL(MAX(attempts - 1, 0)), TOTAL(reconciled),"
    " COUNT(latency_ms) FROM commands"
)


class Ledger:
    """The SQLite results ledger of one job. Not thread-safe: one thread at a time."""

    def __init__(
        self, path: Path, conn: sqlite3.Connection, lock_fd: int | None, clock: Callable[[], float]
    ) -> None:
        """Use :meth:`open`."""
        self.path = path
        self._conn: sqlite3.Connection | None = conn
        self._lock_fd = lock_fd
        self._clock = clock

    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        synchronous: str = "full",
        read_only: bool = False,
        clock: Callable[[], float] = time.time,
        busy_timeout_ms: int = 5000,
    ) -> Ledger:
        """Open (or create, mode 0600) the ledger and lock it; ``read_only`` takes no lock."""
        path = Path(path)
        sync = synchronous.upper()
        if sync not in ("FULL", "NORMAL"):
            raise ValueError(f"synchronous must be 'full' or 'normal', not {synchronous!r}")
        lock_fd = None if read_only else lock(path)
        try:
            conn = connect(path, sync, read_only, busy_timeout_ms)
        except BaseException:
            if lock_fd is not None:
                os.close(lock_fd)  # closing the descriptor releases the flock
            raise
        return cls(path, conn, lock_fd, clock)

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the database and release the lock (idempotent)."""
        conn, self._conn = self._conn, None
        try:
            if conn is not None:
                conn.close()
        except sqlite3.Error as exc:
            raise LedgerError(f"{self.path}: cannot close the ledger: {exc}") from exc
        finally:
            fd, self._lock_fd = self._lock_fd, None
            if fd is not None:
                os.close(fd)

    # -- runs -------------------------------------------------------------------------------------

    def start_run(self, job_path: str, settings: Mapping[str, object]) -> int:
        """Record the start of a run (settings without any secret); return its id."""
        with self._write("start a run") as conn:
            cur = conn.execute(
                "INSERT INTO runs (job_path, started_at, settings) VALUES (?, ?, ?)",
                (job_path, self._clock(), _to_json(settings)),
            )
        assert cur.lastrowid is not None  # an INSERT into a rowid table always has one
        return cur.lastrowid

    def finish_run(
        self, run_id: int, summary: Mapping[str, object], stop_reason: str | None
    ) -> None:
        """Record how a run ended: its summary and why it stopped (None: it finished the job)."""
        with self._write("finish a run") as conn:
            conn.execute(
                "UPDATE runs SET finished_at = ?, summary = ?, stop_reason = ? WHERE id = ?",
                (self._clock(), _to_json(summary), stop_reason, run_id),
            )

    def runs(self) -> list[RunInfo]:
        """Every run, oldest first."""
        with self._read("read the runs") as conn:
            found = conn.execute(
                "SELECT id, job_path, started_at, finished_at, settings, summary, stop_reason"
                " FROM runs ORDER BY id"
            ).fetchall()
        return [
            RunInfo(i, job, start, end, json.loads(st), None if sm is None else json.loads(sm), why)
            for i, job, start, end, st, sm, why in found
        ]

    # -- commands ---------------------------------------------------------------------------------

    def register(self, cmds: Sequence[Command]) -> list[Status]:
        """Add new commands as pending (existing keys stay as they are); each status, in order."""
        if not cmds:
            return []
        with self._write("register commands") as conn:
            before = conn.total_changes
            conn.executemany(_INSERT, map(_insert_params, cmds))
            if conn.total_changes - before == len(cmds):
                return [Status.PENDING] * len(cmds)  # all new: the common case, no lookup
            keys = [c.key for c in cmds]
            found: dict[str, str] = {}
            for i in range(0, len(keys), _CHUNK):
                part = keys[i : i + _CHUNK]
                marks = ", ".join("?" * len(part))
                found.update(
                    conn.execute(f"SELECT key, status FROM commands WHERE key IN ({marks})", part)
                )
        return [_STATUS[found[k]] for k in keys]

    def mark_in_flight(self, items: Sequence[InFlight]) -> None:
        """Mark commands as in flight with the times about to be sent (one transaction)."""
        self.write_batch(items, ())

    def record(self, results: Sequence[Result]) -> None:
        """Write outcomes (one transaction)."""
        self.write_batch((), results)

    def write_batch(self, items: Sequence[InFlight], results: Sequence[Result]) -> None:
        """In-flight marks, then outcomes, in one transaction (one disk sync for both)."""
        marks = [(i.at, i.sent_valid_time, i.sent_expired_time, i.run_id, i.key) for i in items]
        outcomes = [
            (r.status.value, r.errno, r.error, r.uuid, r.attempts, r.at, r.latency_ms,
             int(r.reconciled), r.key)
            for r in results
        ]  # fmt: skip
        self._update("write outcomes", (_MARK, marks), (_RECORD, outcomes))

    def set_status(self, keys: Collection[str], status: Status) -> None:
        """Move commands to ``status`` as they are (e.g. back to pending once reconciled)."""
        params = [(status.value, k) for k in keys]
        self._update("set statuses", ("UPDATE commands SET status = ? WHERE key = ?", params))

    def get(self, key: str) -> Row | None:
        """One command by key, or None."""
        with self._read("read a command") as conn:
            found = conn.execute(f"{_SELECT} WHERE key = ?", (key,)).fetchone()
        return None if found is None else _row(found)

    def rows(self, statuses: Collection[Status] | None = None) -> Generator[Row, None, None]:
        """Commands (all, or those in ``statuses``) in job order, streamed from a cursor.

        Rows written while the iteration is going may or may not be seen.
        """
        sql, params = _SELECT, []
        if statuses is not None:
            params = sorted({Status(s).value for s in statuses})
            if not params:
                return
            sql += f" WHERE status IN ({', '.join('?' * len(params))})"
        cur = self._live().cursor()
        try:
            cur.execute(sql + " ORDER BY seq", params)
            while chunk := cur.fetchmany(_FETCH):
                yield from map(_row, chunk)
        except sqlite3.Error as exc:
            raise LedgerError(f"{self.path}: cannot read commands: {exc}") from exc
        finally:
            cur.close()

    def known_uuids(self, imei: str) -> set[str]:
        """Every uuid the ledger holds for one device."""
        with self._read("read uuids") as conn:
            cur = conn.execute(
                "SELECT uuid FROM commands WHERE imei = ? AND uuid IS NOT NULL", (imei,)
            )
            return {u for (u,) in cur}

    def counts(self) -> dict[Status, int]:
        """How many commands are in each status (every status present)."""
        counts = dict.fromkeys(Status, 0)
        with self._read("count commands") as conn, _small_cache(conn):
            for status, n in conn.execute("SELECT status, COUNT(*) FROM commands GROUP BY status"):
                counts[_STATUS[status]] = n
        return counts

    def total(self) -> int:
        """How many commands the ledger holds."""
        with self._read("count commands") as conn:
            (n,) = conn.execute("SELECT COUNT(*) FROM commands").fetchone()
        return int(n)

    # -- figures for reports ----------------------------------------------------------------------

    def stats(self) -> LedgerStats:
        """Whole-ledger figures in one SQL pass."""
        with self._read("compute figures") as conn, _small_cache(conn):
            t, out, first, last, att, retries, rec, lat = conn.execute(_STATS).fetchone()
        return LedgerStats(int(t), int(out), first, last, int(att), int(retries), int(rec), lat)

    def errno_groups(self) -> list[tuple[int, str, int]]:
        """(errno, error text, count) for every errno recorded, most common text first."""
        with self._read("count errnos") as conn:
            return conn.execute(
                "SELECT errno, error, COUNT(*) AS n FROM commands WHERE errno IS NOT NULL"
                " GROUP BY errno, error ORDER BY errno, n DESC, error"
            ).fetchall()

    def latencies_at(self, ranks: Sequence[int]) -> list[float]:
        """Latencies at 1-based ``ranks`` in ascending order, read from one sorted cursor pass."""
        wanted = sorted(set(ranks))
        found: dict[int, float] = {}
        seen = 0
        conn = self._live()
        cur = conn.cursor()
        try:
            conn.execute(f"PRAGMA cache_size = {_SCAN_CACHE}")  # the sort spills to disk beyond it
            cur.execute(
                "SELECT latency_ms FROM commands WHERE latency_ms IS NOT NULL ORDER BY latency_ms"
            )
            while wanted and (chunk := cur.fetchmany(10 * _FETCH)):
                while wanted and wanted[0] <= seen + len(chunk):
                    rank = wanted.pop(0)
                    found[rank] = chunk[rank - seen - 1][0]
                seen += len(chunk)
        except sqlite3.Error as exc:
            raise LedgerError(f"{self.path}: cannot read latencies: {exc}") from exc
        finally:
            cur.close()
            conn.execute(f"PRAGMA cache_size = {CACHE}")
        return [found[r] for r in ranks]

    @property
    def schema_version(self) -> int:
        """The schema version recorded in the file."""
        with self._read("read the schema version") as conn:
            return schema_version(conn)

    # -- plumbing ---------------------------------------------------------------------------------

    def _live(self) -> sqlite3.Connection:
        if self._conn is None:
            raise LedgerError(f"{self.path}: the ledger is closed")
        return self._conn

    def _update(self, what: str, *steps: tuple[str, Sequence[tuple[object, ...]]]) -> None:
        """Run each (statement, parameter rows) in one transaction; every key must exist."""
        if not any(params for _, params in steps):
            return
        with self._write(what) as conn:
            for sql, params in steps:
                if params and (changed := conn.executemany(sql, params).rowcount) != len(params):
                    raise LedgerError(
                        f"{self.path}: cannot {what}: {len(params) - changed} of {len(params)}"
                        " keys are not in the ledger"
                    )

    @contextlib.contextmanager
    def _read(self, what: str) -> Iterator[sqlite3.Connection]:
        try:
            yield self._live()
        except sqlite3.Error as exc:
            raise LedgerError(f"{self.path}: cannot {what}: {exc}") from exc

    @contextlib.contextmanager
    def _write(self, what: str) -> Iterator[sqlite3.Connection]:
        conn = self._live()
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise LedgerError(f"{self.path}: cannot {what}: {exc}") from exc
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException as exc:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise LedgerError(f"{self.path}: cannot {what}: {exc}") from exc
            raise


@contextlib.contextmanager
def _small_cache(conn: sqlite3.Connection) -> Iterator[None]:
    """A whole-ledger read with a small page cache: memory stays flat however large the ledger."""
    conn.execute(f"PRAGMA cache_size = {_SCAN_CACHE}")
    try:
        yield
    finally:
        conn.execute(f"PRAGMA cache_size = {CACHE}")


def _insert_params(c: Command) -> tuple[object, ...]:
    if not c.key:
        raise ValueError(f"{c.source}:{c.line}: command has no ledger key")
    valid = None if c.valid_time is None else c.valid_time.text
    return (c.key, c.imei, c.obj_id, c.obj_inst_id, c.res_id, c.args, valid,
            c.expired_time.text, c.retry, c.timeout, c.trigger_msg, c.source, c.line)  # fmt: skip


def _row(t: tuple[Any, ...]) -> Row:
    values = list(t)
    values[14] = _STATUS[values[14]]
    values[24] = bool(values[24])
    return Row(*values)


def _to_json(data: Mapping[str, object]) -> str:
    return json.dumps(_scrub(data), default=_plain, ensure_ascii=False, sort_keys=True)


def _scrub(value: object) -> object:
    """Plain data with every secret-looking key dropped (the api-key must never be stored)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {
            str(k): _scrub(v)
            for k, v in value.items()
            if not _SECRET_NAME.search(str(k).lower().replace("-", "_"))
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [_scrub(v) for v in value]
    return value


def _plain(value: object) -> object:
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return type(value).__name__  # never repr(): it could carry a secret

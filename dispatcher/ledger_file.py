"""The ledger's file: owner-only creation, the single-writer lock, SQLite settings and the schema.

The schema grows by additive migrations: ``MIGRATIONS[n]`` takes a ledger from version ``n`` to
``n + 1`` (recorded in the ``meta`` table), so a newer dispatcher can add columns to a ledger an
older one wrote without rewriting it. Never edit a released step; append a new one.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import sqlite3
from pathlib import Path
from typing import Final

from dispatcher.errors import LedgerError, LedgerLockedError

__all__ = ["CACHE", "MIGRATIONS", "ROW_COLUMNS", "connect", "lock", "schema_version"]

log = logging.getLogger(__name__)

CACHE = -16000  # KiB (negative: a size, not pages): the key index stays mostly cached

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (  # 1: the first schema
        "CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
        """CREATE TABLE commands (
            seq INTEGER PRIMARY KEY,
            key TEXT NOT NULL UNIQUE,
            imei TEXT NOT NULL,
            obj_id INTEGER NOT NULL,
            obj_inst_id INTEGER NOT NULL,
            res_id INTEGER NOT NULL,
            args TEXT,
            valid_time TEXT,
            expired_time TEXT NOT NULL,
            retry INTEGER NOT NULL,
            timeout INTEGER NOT NULL,
            trigger_msg INTEGER NOT NULL,
            source TEXT NOT NULL,
            line INTEGER NOT NULL,
            status TEXT NOT NULL DEFAULT 'pending',
            errno INTEGER,
            error TEXT NOT NULL DEFAULT '',
            uuid TEXT,
            attempts INTEGER NOT NULL DEFAULT 0,
            first_attempt_at REAL,
            last_attempt_at REAL,
            latency_ms REAL,
            sent_valid_time TEXT,
            sent_expired_time TEXT,
            reconciled INTEGER NOT NULL DEFAULT 0,
            run_id INTEGER
        )""",
        "CREATE INDEX commands_imei ON commands (imei)",
        # No index on status: it changes twice per command, and only the start and the end of a
        # run ask by status (a scan).
        """CREATE TABLE runs (
            id INTEGER PRIMARY KEY,
            job_path TEXT NOT NULL,
            started_at REAL NOT NULL,
            finished_at REAL,
            settings TEXT NOT NULL,
            summary TEXT,
            stop_reason TEXT
        )""",
    ),
)

# The columns of a ledger Row, in its field order.
ROW_COLUMNS: Final = (
    "seq", "key", "imei", "obj_id", "obj_inst_id", "res_id", "args", "valid_time", "expired_time",
    "retry", "timeout", "trigger_msg", "source", "line", "status", "errno", "error", "uuid",
    "attempts", "first_attempt_at", "last_attempt_at", "latency_ms", "sent_valid_time",
    "sent_expired_time", "reconciled",
)  # fmt: skip


def lock(path: Path) -> int:
    """Take the exclusive, non-blocking flock on ``<path>.lock``; return its descriptor.

    Closing the descriptor (or the process dying) releases it.
    """
    lock_path = path.with_name(path.name + ".lock")
    if not path.parent.is_dir():
        raise LedgerError(f"cannot open the ledger {path}: directory {path.parent} does not exist")
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise LedgerError(f"cannot open the ledger lock {lock_path}: {exc.strerror}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
        os.close(fd)
        who = f" (process {holder})" if holder.isdigit() else ""
        raise LedgerLockedError(
            f"ledger {path} is in use by another dispatcher{who}: {lock_path} is locked;"
            " wait for that run to end (or stop it), then try again"
        ) from exc
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def connect(path: Path, synchronous: str, read_only: bool, busy_ms: int) -> sqlite3.Connection:
    """Open the database (creating it 0600), set WAL and ``synchronous``, migrate the schema."""
    if read_only and not path.is_file():
        raise LedgerError(f"no ledger at {path}")
    if not read_only:
        _create_private(path)
    target = path.resolve().as_uri() + "?mode=ro" if read_only else str(path)
    conn: sqlite3.Connection | None = None
    try:
        conn = sqlite3.connect(target, uri=read_only, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {int(busy_ms)}")
        if not read_only:
            conn.execute("PRAGMA journal_mode = WAL").fetchall()
        conn.execute(f"PRAGMA synchronous = {synchronous}")
        conn.execute(f"PRAGMA cache_size = {CACHE}")
        # Keys are hashes, so each batch dirties ~one key-index page per command; a 40 MB WAL lets a
        # checkpoint write each page once for many batches instead of once per batch or two.
        conn.execute("PRAGMA wal_autocheckpoint = 10000")
        conn.execute("PRAGMA journal_size_limit = 67108864")  # truncate the WAL back to 64 MB
        _migrate(conn, path, read_only)
    except BaseException as exc:
        if conn is not None:
            conn.close()
        if isinstance(exc, sqlite3.DatabaseError) and "not a database" in str(exc):
            raise LedgerError(
                f"{path} is not a dispatcher ledger (not an SQLite database)"
            ) from exc
        if isinstance(exc, sqlite3.Error):
            raise LedgerError(f"cannot open the ledger {path}: {exc}") from exc
        raise
    return conn


def _create_private(path: Path) -> None:
    """Create the database file owner-only; SQLite gives its -wal and -shm files the same mode."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        return
    except OSError as exc:
        raise LedgerError(f"cannot create the ledger {path}: {exc.strerror}") from exc
    try:
        os.fchmod(fd, 0o600)  # exactly 0600 whatever the umask
    finally:
        os.close(fd)


def _migrate(conn: sqlite3.Connection, path: Path, read_only: bool) -> None:
    """Bring the schema to the newest version, one additive step per transaction."""
    tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if tables and "meta" not in tables:
        raise LedgerError(f"{path} is an SQLite database but not a dispatcher ledger")
    version = 0
    if tables:
        found = conn.execute("SELECT value FROM meta WHERE name = 'schema_version'").fetchone()
        version = int(found[0]) if found else 0
    newest = len(MIGRATIONS)
    if version > newest:
        raise LedgerError(
            f"{path} was written by a newer dispatcher (schema {version}; this one knows"
            f" {newest}): upgrade dispatcher to use it"
        )
    if version < newest and read_only:
        raise LedgerError(
            f"{path} has schema {version} (current: {newest}): open it once for writing to upgrade"
        )
    for step in range(version, newest):
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in MIGRATIONS[step]:
                conn.execute(statement)
            conn.execute(
                "INSERT INTO meta (name, value) VALUES ('schema_version', ?)"
                " ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                (str(step + 1),),
            )
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
        log.debug("ledger %s: schema now at version %d", path, step + 1)


def schema_version(conn: sqlite3.Connection) -> int:
    """The version recorded in ``meta``."""
    (value,) = conn.execute("SELECT value FROM meta WHERE name = 'schema_version'").fetchone()
    return int(value)

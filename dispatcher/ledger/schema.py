"""The ledger's file: owner-only creation, the single-writer lock, SQLite settings and the schema.

The schema grows by additive migrations: ``MIGRATIONS[n]`` takes a ledger from version ``n`` to
``n + 1`` (recorded in the ``meta`` table), so a newer dispatcher can add columns to a ledger an
older one wrote without rewriting it. Never edit a released step; append a new one.

Every path is resolved (symlinks followed) before it is used; the lock is in lock.py.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Final

from dispatcher.errors import LedgerError
from dispatcher.ledger.columns import SELECT_ROWS
from dispatcher.ledger.lock import FULL_HINT, created_here, not_a_ledger, os_error
from dispatcher.ledger.records import LedgerFullError

__all__ = [
    "ACTIVE",
    "ACTIVE_STATS",
    "CACHE",
    "COUNT_TO_CHECK",
    "MIGRATIONS",
    "PRODUCTS_TO_CHECK",
    "RECORD_CANCEL",
    "RECORD_DELIVERY",
    "ROWS_TO_CHECK",
    "SCAN_CACHE",
    "OlderSchemaError",
    "connect",
    "schema_version",
    "small_cache",
    "sqlite_error",
    "transaction",
]

log = logging.getLogger(__name__)

CACHE = -16000  # KiB (negative: a size, not pages): the key index stays mostly cached
SCAN_CACHE: Final = -2000  # KiB for whole-ledger reads and sorts (reports)

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
    (  # 2: OneNET's clock at each attempt; rows retired from the job (edited or removed)
        "ALTER TABLE commands ADD COLUMN first_server_at REAL",
        "ALTER TABLE commands ADD COLUMN last_server_at REAL",
        "ALTER TABLE commands ADD COLUMN retired TEXT",
    ),
    (  # 3: what OneNET's history says became of each accepted command (dispatcher status)
        "ALTER TABLE commands ADD COLUMN send_status INTEGER",
        "ALTER TABLE commands ADD COLUMN confirm_status TEXT",
        "ALTER TABLE commands ADD COLUMN send_time TEXT",
        "ALTER TABLE commands ADD COLUMN confirm_time TEXT",
        "ALTER TABLE commands ADD COLUMN cmd_result TEXT",
        "ALTER TABLE commands ADD COLUMN status_checked_at REAL",
    ),
    (  # 4: what came of asking OneNET to cancel a command (dispatcher cancel)
        "ALTER TABLE commands ADD COLUMN cancelled_at REAL",
        "ALTER TABLE commands ADD COLUMN cancel_error TEXT",
    ),
    (  # 5: the retry job a command was handed to (dispatcher retry-failed)
        "ALTER TABLE commands ADD COLUMN retried_in TEXT",
    ),
    (  # 6: LwM2M operations (a read of a whole object or instance has -1 as the id it omits),
        # and steps (a device's next step goes out once the one before, after_key, is accepted)
        "ALTER TABLE commands ADD COLUMN op TEXT NOT NULL DEFAULT 'execute'",
        "ALTER TABLE commands ADD COLUMN mode INTEGER",
        "ALTER TABLE commands ADD COLUMN step INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE commands ADD COLUMN after_key TEXT",
        # the OneNET product (a lane of the config) a command goes through; NULL: the default
        "ALTER TABLE commands ADD COLUMN product TEXT",
    ),
    (  # 7: canary verdicts tied to the commands they covered (canary: the verdict's id); the
        # one-flag-per-product record of meta.rollout is taken over for the rows it covered
        """CREATE TABLE verdicts (
            id INTEGER PRIMARY KEY,
            product TEXT NOT NULL,
            passed_at REAL NOT NULL,
            judged TEXT NOT NULL,
            covered INTEGER NOT NULL
        )""",
        "ALTER TABLE commands ADD COLUMN canary INTEGER",
        """UPDATE commands SET canary = 0 WHERE retired IS NULL AND EXISTS (
            SELECT 1 FROM meta WHERE name = 'rollout' AND (
                (commands.product IS NULL AND json_extract(value, '$.canary_passed'))
                OR json_extract(value, '$."canary_passed:' || COALESCE(commands.product, '')
                                || '"')))""",
    ),
)

ACTIVE: Final = "retired IS NULL"
RECORD_DELIVERY: Final = (
    "UPDATE commands SET send_status = ?, confirm_status = ?, send_time = ?, confirm_time = ?,"
    " cmd_result = COALESCE(?, cmd_result), status_checked_at = ? WHERE key = ?"
    " AND status = 'accepted'"
)
# Delivery may still change: never read, or send_status 1 (waiting) or 3 (sent).
# Retired rows too: an earlier version OneNET holds is still followed (and cancelled).
TO_CHECK: Final = (
    "status = 'accepted' AND uuid IS NOT NULL AND (send_status IS NULL OR send_status IN (1, 3))"
)
# One page of them, by device: after (imei, seq) ?1, ?2, at most ?3 rows, of product ?4 (NULL:
# of any; '': of the default one).
_OF_PRODUCT: Final = "(?4 IS NULL OR COALESCE(product, '') = ?4)"
ROWS_TO_CHECK: Final = (
    f"{SELECT_ROWS} WHERE {TO_CHECK} AND {_OF_PRODUCT} AND (imei, seq) > (?1, ?2)"
    " ORDER BY imei, seq LIMIT ?3"
)
# How many, on how many devices, and the latest window's end as sent (OneNET's format sorts).
COUNT_TO_CHECK: Final = (
    "SELECT COUNT(*), COUNT(DISTINCT imei), MAX(sent_expired_time) FROM commands"
    f" WHERE {TO_CHECK} AND {_OF_PRODUCT.replace('?4', '?1')}"
)
# The products of the rows to check ('': the default one).
PRODUCTS_TO_CHECK: Final = f"SELECT DISTINCT COALESCE(product, '') FROM commands WHERE {TO_CHECK}"
# A cancel's result: cancelled (send_status 2, no error) or refused (the error; the status as read).
RECORD_CANCEL: Final = (
    "UPDATE commands SET cancelled_at = ?, cancel_error = ?,"
    " send_status = COALESCE(?, send_status) WHERE key = ? AND status = 'accepted'"
)
ACTIVE_STATS: Final = (
    "SELECT COUNT(*), TOTAL(status NOT IN ('pending', 'in_flight')), MIN(first_attempt_at),"
    " MAX(last_attempt_at), TOTAL(attempts), TOTAL(MAX(attempts - 1, 0)), TOTAL(reconciled),"
    f" COUNT(latency_ms) FROM commands WHERE {ACTIVE}"
)


@contextlib.contextmanager
def small_cache(conn: sqlite3.Connection) -> Iterator[None]:
    """A whole-ledger read with a small page cache: memory stays flat however large the ledger."""
    conn.execute(f"PRAGMA cache_size = {SCAN_CACHE}")
    try:
        yield
    finally:
        conn.execute(f"PRAGMA cache_size = {CACHE}")


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection, path: Path, what: str) -> Iterator[sqlite3.Connection]:
    """One write transaction (BEGIN IMMEDIATE ... COMMIT), rolled back on any error."""
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.Error as exc:
        raise sqlite_error(path, what, exc) from exc
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException as exc:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        if isinstance(exc, sqlite3.Error):
            raise sqlite_error(path, what, exc) from exc
        raise


def sqlite_error(path: Path, what: str, exc: sqlite3.Error) -> LedgerError:
    """The LedgerError for a failed SQLite call; LedgerFullError for SQLITE_FULL."""
    if getattr(exc, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_FULL:
        return LedgerFullError(f"{path}: cannot {what}: {FULL_HINT} ({exc})")
    return LedgerError(f"{path}: cannot {what}: {exc}")


def connect(
    path: Path, synchronous: str, read_only: bool, busy_ms: int, max_pages: int | None = None
) -> sqlite3.Connection:
    """Open the (resolved) database, creating it 0600; set WAL and ``synchronous``; migrate.

    Only a file created here (or by this process's lock) is made a new ledger: an existing file
    that is not one (an empty file, an SQLite database without tables, any other file) is refused
    and left as it was, whether opened for writing or not.

    ``max_pages`` caps the file at that many pages (``PRAGMA max_page_count``): a test hook that
    makes SQLite answer "database or disk is full" as a full disk would.
    """
    real = path.resolve()
    if read_only and not real.is_file():
        raise LedgerError(f"no ledger at {path}")
    created = not read_only and (_create_private(real) or created_here(real))
    target = real.as_uri() + "?mode=ro" if read_only else str(real)
    conn: sqlite3.Connection | None = None
    try:
        conn = sqlite3.connect(target, uri=read_only, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {int(busy_ms)}")
        # Before anything is written (WAL mode writes the header): a file that existed must be a
        # ledger already. A run stopped as it created its ledger leaves one without tables.
        if not created and not conn.execute("SELECT 1 FROM sqlite_master").fetchone():
            raise not_a_ledger(path, empty=real.stat().st_size == 0)
        if not read_only:
            conn.execute("PRAGMA journal_mode = WAL").fetchall()
        conn.execute(f"PRAGMA synchronous = {synchronous}")
        conn.execute(f"PRAGMA cache_size = {CACHE}")
        # Temporary tables (the job's keys while comparing) and big sorts go to a file, not memory.
        conn.execute("PRAGMA temp_store = FILE")
        # Keys are hashes, so each batch dirties ~one key-index page per command; a 40 MB WAL lets a
        # checkpoint write each page once for many batches instead of once per batch or two.
        conn.execute("PRAGMA wal_autocheckpoint = 10000")
        conn.execute("PRAGMA journal_size_limit = 67108864")  # truncate the WAL back to 64 MB
        _migrate(conn, path, read_only)
        if max_pages is not None:
            conn.execute(f"PRAGMA max_page_count = {int(max_pages)}")
    except BaseException as exc:
        if conn is not None:
            conn.close()
        if isinstance(exc, sqlite3.DatabaseError) and "not a database" in str(exc):
            raise LedgerError(
                f"{path} is not a dispatcher ledger (not an SQLite database)"
            ) from exc
        if isinstance(exc, sqlite3.Error):
            raise sqlite_error(path, "open the ledger", exc) from exc
        raise
    return conn


def _create_private(path: Path) -> bool:
    """Create the database file owner-only (SQLite gives its -wal and -shm files the same mode);
    whether it was created (False: it existed)."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        return False
    except OSError as exc:
        raise os_error(path, "create the ledger", exc) from exc
    try:
        os.fchmod(fd, 0o600)  # exactly 0600 whatever the umask
    finally:
        os.close(fd)
    return True


class OlderSchemaError(LedgerError):
    """A ledger an older dispatcher wrote, opened read-only: it cannot be upgraded in place."""


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
        raise OlderSchemaError(
            f"{path} has schema {version} (current: {newest}) and is read here without writing:"
            f" run `dispatcher status {path}` (or `dispatcher run` on its job) once to upgrade it"
            " in place; the upgrade only adds to the schema, nothing it holds changes"
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

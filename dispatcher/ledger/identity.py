"""Which job a ledger belongs to, and how the job file differs from what the ledger holds.

The ledger records its job (path, name, fingerprint, total) in ``meta``. :func:`compare` streams a
job's commands once against the ledger: a command whose key (imei, ids, args, occurrence) is an
active row's but whose other fields differ is *changed*; an active row whose key is no longer in the
job is *removed*; a removed row listed again as it was has *returned*; the rest are *new*. The job's
keys go to a temporary table on disk, so a million commands are compared in flat memory.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Final, Protocol

from dispatcher.ledger.columns import INSERT_COMMAND, SELECT_ROWS, insert_params, row_of
from dispatcher.ledger.records import TO_SEND, Retired, Row, Status

if TYPE_CHECKING:
    from dispatcher.model.command import Command

__all__ = [
    "AT_ONENET",
    "Change",
    "Edits",
    "Found",
    "JobDiff",
    "JobRecord",
    "clear_job",
    "compare",
    "default_ledger_path",
    "differing",
    "judge",
    "read_job",
    "recorded_job_paths",
    "risky",
    "same_job_file",
    "write_job",
]

Transaction = Callable[[str], AbstractContextManager[sqlite3.Connection]]

_CHUNK: Final = 500  # keys per `IN (...)`, well under SQLite's variable limit
_KEYS: Final = "temp.dispatcher_job_keys"
_TEMP_CACHE: Final = -2000  # KiB for that table's pages: the rest of it stays on disk
_FIELDS: Final = ("valid_time", "expired_time", "retry", "timeout", "trigger_msg", "product")
_META: Final = ("job_path", "job_name", "job_fingerprint", "job_total")
_NOT_IN_JOB: Final = f"WHERE retired IS NULL AND key NOT IN (SELECT key FROM {_KEYS})"


@dataclass(frozen=True, slots=True)
class JobRecord:
    """The job a ledger belongs to: its file (resolved, absolute), name, fingerprint and size."""

    path: str
    name: str
    fingerprint: str  # hex
    total: int  # commands in the job


@dataclass(frozen=True, slots=True)
class Change:
    """An active row whose command was edited in the job file: the fields that differ."""

    row: Row
    command: Command
    fields: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class JobDiff:
    """How a job differs from its ledger: counts, and a few examples of changed and removed rows.

    A removed row listed again with other fields counts as changed (its old version stays retired).
    """

    changed: int
    removed: int
    returned: int
    new: int
    moved: int  # the same command at another source or line (not a change; applied all the same)
    changed_examples: tuple[Change, ...]
    removed_examples: tuple[Row, ...]
    applied: bool  # False: a dry comparison, nothing written
    # Of the changed rows, those whose version may be at OneNET (accepted, in doubt, in flight):
    # only their new versions could give a device a second command.
    changed_at_onenet: int = 0

    @property
    def same(self) -> bool:
        """True when nothing is to be applied: no row changed, removed, returned or moved."""
        return not (self.changed or self.removed or self.returned or self.moved)


def default_ledger_path(job_path: Path) -> Path:
    """``<dir>/<file name>.ledger.db`` (a.yaml and a.csv get their own ledgers).

    The older default ``<dir>/<stem>.ledger.db`` is kept when it exists, the new one does not, and
    it records this job file: those outcomes must go on being used, or they would be sent again.
    """
    new = job_path.with_name(job_path.name + ".ledger.db")
    old = job_path.with_name(job_path.stem + ".ledger.db")
    if old != new and old.is_file() and not new.exists() and _records(old, job_path.resolve()):
        return old
    return new


def _records(ledger: Path, job: Path) -> bool:
    """Whether the ledger file says it belongs to ``job`` (read as it is, whatever its schema)."""
    try:
        conn = sqlite3.connect(ledger.resolve().as_uri() + "?mode=ro", uri=True)
    except sqlite3.Error:
        return False
    try:
        found = conn.execute("SELECT value FROM meta WHERE name = 'job_path'").fetchone()
        if found is not None:
            return Path(found[0]) == job
        return any(same_job_file(p, job) for (p,) in conn.execute("SELECT job_path FROM runs"))
    except sqlite3.Error:
        return False  # not a ledger, or not one this version can read: not this job's
    finally:
        conn.close()


def same_job_file(recorded: str, job: Path) -> bool:
    """Whether a run's job path (as it was given) names the job file ``job`` (resolved).

    A relative path was relative to the directory that run started in, which the ledger does not
    know: run from another directory, it still names the job file it ends with.
    """
    given = Path(recorded)
    if given.resolve() == job:
        return True
    parts = given.parts
    if given.is_absolute() or not parts or ".." in parts:
        return False
    return job.parts[-len(parts) :] == parts


def read_job(conn: sqlite3.Connection) -> JobRecord | None:
    """The job recorded in ``meta``, or None."""
    marks = ", ".join("?" * len(_META))
    found = dict(conn.execute(f"SELECT name, value FROM meta WHERE name IN ({marks})", _META))
    if len(found) < len(_META):
        return None
    path, name, fingerprint, total = (found[n] for n in _META)
    return JobRecord(path, name, fingerprint, int(total))


def write_job(conn: sqlite3.Connection, record: JobRecord) -> None:
    """Record the job in ``meta`` (inside the caller's transaction)."""
    values = (record.path, record.name, record.fingerprint, str(record.total))
    conn.executemany(
        "INSERT INTO meta (name, value) VALUES (?, ?)"
        " ON CONFLICT(name) DO UPDATE SET value = excluded.value",
        zip(_META, values, strict=True),
    )


def clear_job(conn: sqlite3.Connection) -> None:
    """Forget the job recorded in ``meta`` (inside the caller's transaction)."""
    conn.execute(f"DELETE FROM meta WHERE name IN ({', '.join('?' * len(_META))})", _META)


def recorded_job_paths(conn: sqlite3.Connection) -> list[str]:
    """The distinct job paths of the runs, in the order they first ran."""
    cur = conn.execute("SELECT job_path FROM runs GROUP BY job_path ORDER BY MIN(id)")
    return [p for (p,) in cur]


def compare(
    conn: sqlite3.Connection,
    transaction: Transaction,
    commands: Iterable[Command],
    *,
    apply: bool,
    sample: int,
) -> JobDiff:
    """Compare the job with the ledger (see the module); ``apply`` brings the ledger in line."""
    found = Found(sample)
    conn.execute(f"DROP TABLE IF EXISTS {_KEYS}")
    conn.execute(f"CREATE TABLE {_KEYS} (key TEXT PRIMARY KEY) WITHOUT ROWID")
    conn.execute(f"PRAGMA temp.cache_size = {_TEMP_CACHE}")
    try:
        stream = iter(commands)
        while chunk := tuple(islice(stream, _CHUNK)):
            with _step(conn, transaction, apply, "apply the job's edits") as c:
                _compare_chunk(c, chunk, found, apply)
        with _step(conn, transaction, apply, "retire the rows no longer in the job") as c:
            (removed,) = c.execute(f"SELECT COUNT(*) FROM commands {_NOT_IN_JOB}").fetchone()
            limit = max(sample, 0)
            cur = c.execute(f"{SELECT_ROWS} {_NOT_IN_JOB} ORDER BY seq LIMIT ?", (limit,))
            examples = tuple(map(row_of, cur))
            if apply and removed:
                c.execute(
                    f"UPDATE commands SET retired = ? {_NOT_IN_JOB}", (Retired.REMOVED.value,)
                )
    finally:
        conn.execute(f"DROP TABLE IF EXISTS {_KEYS}")
    return JobDiff(
        found.changed, int(removed), found.returned, found.new, found.moved,
        tuple(found.examples), examples, apply, found.at_onenet,
    )  # fmt: skip


class Found:
    """What a comparison has found so far (this one, or another ledger's)."""

    def __init__(self, sample: int) -> None:
        self.changed = self.returned = self.new = self.moved = self.at_onenet = 0
        # The examples shown first are those that stop a run: the ones OneNET may hold.
        self.risky: list[Change] = []
        self.others: list[Change] = []
        self.sample = sample

    def change(self, row: Row, command: Command, fields: tuple[str, ...]) -> None:
        self.changed += 1
        kept = self.risky if row.status in AT_ONENET else self.others
        self.at_onenet += kept is self.risky
        if len(kept) < self.sample:
            kept.append(Change(row, command, fields))

    @property
    def examples(self) -> list[Change]:
        """A few changed rows, those OneNET may hold first."""
        return (self.risky + self.others)[: self.sample]


@contextlib.contextmanager
def _step(
    conn: sqlite3.Connection, transaction: Transaction, apply: bool, what: str
) -> Iterator[sqlite3.Connection]:
    """One write transaction when applying; plain reads otherwise."""
    if apply:
        with transaction(what) as c:
            yield c
    else:
        yield conn


def _compare_chunk(
    conn: sqlite3.Connection, chunk: tuple[Command, ...], found: Found, apply: bool
) -> None:
    by_key: dict[str, Command] = {}
    for c in chunk:
        insert_params(c)  # refuses a command without a key
        by_key.setdefault(c.key, c)
    marks = ", ".join("?" * len(by_key))
    keys = list(by_key)
    seen = {k for (k,) in conn.execute(f"SELECT key FROM {_KEYS} WHERE key IN ({marks})", keys)}
    if seen:  # listed twice: only the first copy counts
        keys = [k for k in keys if k not in seen]
        marks = ", ".join("?" * len(keys))
    if not keys:
        return
    conn.executemany(f"INSERT INTO {_KEYS} (key) VALUES (?)", [(k,) for k in keys])
    cur = conn.execute(f"{SELECT_ROWS} WHERE key IN ({marks})", keys)
    rows = {r.key: r for r in map(row_of, cur)}
    edits = _SqliteEdits(conn)
    for key in keys:
        judge(rows.get(key), by_key[key], found, edits, apply=apply)


class Edits(Protocol):
    """What a ledger does to bring a row in line with the job, as ``judge`` decides."""

    def earlier_version(self, row: Row, command: Command) -> Row | None:
        """A retired earlier version of the row (``<key>~<n>``) with the command's fields."""

    def restore(self, active: Row, earlier: Row, command: Command) -> None:
        """Retire the active row aside; give its key back to ``earlier``, at the job's place."""

    def replace(self, row: Row, command: Command) -> None:
        """Keep the row as it is under ``<key>~<n>`` (retired), and insert the edited command."""

    def take_back(self, row: Row, command: Command) -> None:
        """The retired row is active again, at the job's place of ``command``."""

    def move(self, row: Row, command: Command) -> None:
        """The row is at the job's place of ``command`` (its source and line)."""


def judge(row: Row | None, command: Command, found: Found, ledger: Edits, *, apply: bool) -> None:
    """One command of the job against its row (None: the ledger holds none), counted in
    ``found``; with ``apply``, the ledger's edits bring the row in line. The one rule of every
    ledger: new, changed (kept aside, the edit goes in), returned (to a removed row, or to an
    earlier version whose taking up sends nothing OneNET may hold), or moved in the file."""
    if row is None:
        found.new += 1
        return
    fields = differing(row, command)
    earlier = ledger.earlier_version(row, command) if fields else None
    edits = ledger if apply else None
    if earlier is not None and not risky(row, earlier):
        # The job went back to a version the ledger holds, and nothing new would reach OneNET:
        # that version is taken up again, with all it holds.
        found.returned += 1
        if edits is not None:
            edits.restore(row, earlier, command)
    elif fields:
        found.change(row, command, fields)
        if edits is not None and earlier is not None:
            edits.restore(row, earlier, command)  # never a second row of the same values
        elif edits is not None:
            edits.replace(row, command)
    elif row.retired is not None:
        found.returned += 1
        if edits is not None:
            edits.take_back(row, command)
    elif (row.command.source, row.command.line) != (command.source, command.line):
        found.moved += 1
        if edits is not None:
            edits.move(row, command)


def differing(row: Row, command: Command) -> tuple[str, ...]:
    """The names of the fields (beyond the key's) in which the row and the command differ."""
    valid = None if command.valid_time is None else command.valid_time.text
    now = (valid, command.expired_time.text, command.retry, command.timeout, command.trigger_msg,
           command.product)  # fmt: skip
    c = row.command
    was_valid = None if c.valid_time is None else c.valid_time.text
    was = (was_valid, c.expired_time.text, c.retry, c.timeout, c.trigger_msg, c.product)
    return tuple(name for name, a, b in zip(_FIELDS, was, now, strict=True) if a != b)


# A command OneNET may hold (or settled for good): another version of it must not be sent blindly.
AT_ONENET = frozenset({Status.ACCEPTED, Status.IN_DOUBT, Status.IN_FLIGHT})


def risky(active: Row, earlier: Row) -> bool:
    """Whether taking ``earlier`` up again would send it while ``active`` may sit at OneNET."""
    return earlier.status in TO_SEND and active.status in AT_ONENET


class _SqliteEdits:
    """The edits of ``judge`` on a SQLite ledger's commands table."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def earlier_version(self, row: Row, command: Command) -> Row | None:
        """A retired earlier version of the row with exactly the command's fields."""
        cur = self.conn.execute(
            f"{SELECT_ROWS} WHERE key > ? AND key < ? ORDER BY seq",
            (f"{row.key}~", f"{row.key}~~"),
        )
        for earlier in map(row_of, cur):
            if not differing(earlier, command):
                return earlier
        return None

    def restore(self, active: Row, earlier: Row, command: Command) -> None:
        """Retire the active row under the next free suffix; give its key back to ``earlier``."""
        self._retire_aside(active.key)
        self.conn.execute(
            "UPDATE commands SET key = ?, retired = NULL, source = ?, line = ? WHERE key = ?",
            (active.key, command.source, command.line, earlier.key),
        )

    def replace(self, row: Row, command: Command) -> None:
        """Keep the row as it is under ``<key>~<n>`` (retired), and insert the edited command."""
        self._retire_aside(row.key)
        self.conn.execute(INSERT_COMMAND, insert_params(command))

    def take_back(self, row: Row, command: Command) -> None:
        """The retired row active again, at the job's place."""
        self.conn.execute(
            "UPDATE commands SET retired = NULL, source = ?, line = ? WHERE key = ?",
            (command.source, command.line, row.key),
        )

    def move(self, row: Row, command: Command) -> None:
        """The row at the job's place."""
        self.conn.execute(
            "UPDATE commands SET source = ?, line = ? WHERE key = ?",
            (command.source, command.line, row.key),
        )

    def _retire_aside(self, key: str) -> None:
        """Move the row of ``key``, as it is, to the next free ``<key>~<n>`` (retired if
        active)."""
        n = 1
        while self.conn.execute("SELECT 1 FROM commands WHERE key = ?", (f"{key}~{n}",)).fetchone():
            n += 1
        self.conn.execute(
            "UPDATE commands SET key = ?, retired = COALESCE(retired, ?) WHERE key = ?",
            (f"{key}~{n}", Retired.CHANGED.value, key),
        )

"""The PostgreSQL ledger's job: its record, its runs, and how the job file differs from what the
ledger holds (identity.py's comparison, with the same rule, ``identity.judge``, and this
database's edits).

The job's keys go to a temporary table of the session while comparing, so that a job of a
million commands is compared in flat memory, as in SQLite; applying, each chunk of the job is one
transaction. A run's settings and summary are kept as the JSON text written (runs.to_json), never
reparsed by the server, so that a copy of the ledger is exact.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Iterator, Mapping
from itertools import islice
from typing import TYPE_CHECKING, Final

from dispatcher.ledger.columns import insert_params, row_of
from dispatcher.ledger.identity import Found, JobDiff, JobRecord, differing, judge
from dispatcher.ledger.postgres_batch import ANY_KEY, KEYED, json_of
from dispatcher.ledger.postgres_session import Conn, Session
from dispatcher.ledger.postgres_table import SELECT_ROWS, insert_new
from dispatcher.ledger.records import Retired, Row, RunInfo
from dispatcher.ledger.runs import to_json

if TYPE_CHECKING:
    from dispatcher.model.command import Command

__all__ = [
    "compare",
    "end_run",
    "read_job",
    "read_runs",
    "recorded_job_paths",
    "start_run",
    "write_job",
]

_CHUNK: Final = 500  # commands compared (and, applying, written) per transaction
_KEYS: Final = "pg_temp.dispatcher_job_keys"
_NOT_IN_JOB: Final = (
    f"WHERE job_id = %(job)s AND retired IS NULL AND NOT EXISTS (SELECT 1 FROM {_KEYS} k"
    " WHERE k.key = commands.key)"
)


def read_job(conn: Conn, job: int) -> JobRecord | None:
    """The job recorded (set_job's), or None."""
    found = conn.execute(
        "SELECT job_path, job_name, job_fingerprint, job_total FROM dispatcher.jobs WHERE id = %s",
        (job,),
    ).fetchone()
    if found is None or None in found:
        return None
    path, name, fingerprint, total = found
    return JobRecord(path, name, fingerprint, int(total))


def write_job(conn: Conn, job: int, record: JobRecord) -> None:
    """Record the job (inside the caller's transaction)."""
    conn.execute(
        "UPDATE dispatcher.jobs SET job_path = %s, job_name = %s, job_fingerprint = %s,"
        " job_total = %s WHERE id = %s",
        (record.path, record.name, record.fingerprint, record.total, job),
    )


def start_run(
    conn: Conn, job: int, job_path: str, at: float, settings: Mapping[str, object]
) -> int:
    """Add a run started at ``at`` (unix seconds), numbered on from the job's last; its id."""
    found = conn.execute(
        "INSERT INTO dispatcher.runs (job_id, id, job_path, started_at, settings)"
        " SELECT %s, COALESCE(max(id), 0) + 1, %s, %s, %s FROM dispatcher.runs WHERE job_id = %s"
        " RETURNING id",
        (job, job_path, at, to_json(settings), job),
    ).fetchone()
    assert found is not None  # an INSERT … RETURNING of one row
    return int(found[0])


def end_run(
    conn: Conn,
    job: int,
    run_id: int,
    at: float,
    summary: Mapping[str, object],
    stop_reason: str | None,
) -> None:
    """Record that run ``run_id`` ended at ``at``: its summary and why it stopped."""
    conn.execute(
        "UPDATE dispatcher.runs SET finished_at = %s, summary = %s, stop_reason = %s"
        " WHERE job_id = %s AND id = %s",
        (at, to_json(summary), stop_reason, job, run_id),
    )


def read_runs(conn: Conn, job: int) -> list[RunInfo]:
    """Every run, oldest first."""
    cur = conn.execute(
        "SELECT id, job_path, started_at, finished_at, settings, summary, stop_reason"
        " FROM dispatcher.runs WHERE job_id = %s ORDER BY id",
        (job,),
    )
    return [
        RunInfo(i, path, start, end, json.loads(st), None if sm is None else json.loads(sm), why)
        for i, path, start, end, st, sm, why in cur
    ]


def recorded_job_paths(conn: Conn, job: int) -> list[str]:
    """The distinct job paths of the runs, in the order they first ran."""
    cur = conn.execute(
        "SELECT job_path FROM dispatcher.runs WHERE job_id = %s GROUP BY job_path ORDER BY min(id)",
        (job,),
    )
    return [p for (p,) in cur]


def compare(session: Session, commands: Iterable[Command], *, apply: bool, sample: int) -> JobDiff:
    """Compare the job with the ledger (identity.py); ``apply`` brings the ledger in line."""
    found = Found(sample)
    job = session.job_id
    with session.read("compare the job") as conn:
        conn.execute(f"DROP TABLE IF EXISTS {_KEYS}")
        conn.execute('CREATE TEMP TABLE dispatcher_job_keys (key text COLLATE "C" PRIMARY KEY)')
    try:
        stream = iter(commands)
        while chunk := tuple(islice(stream, _CHUNK)):
            with _step(session, apply, "apply the job's edits") as c:
                _compare_chunk(c, job, chunk, found, apply)
        with _step(session, apply, "retire the rows no longer in the job") as c:
            params = {"job": job, "limit": max(sample, 0), "why": Retired.REMOVED.value}
            counted = c.execute(
                f"SELECT count(*) FROM dispatcher.commands {_NOT_IN_JOB}", params
            ).fetchone()
            removed = 0 if counted is None else int(counted[0])
            cur = c.execute(f"{SELECT_ROWS} {_NOT_IN_JOB} ORDER BY seq LIMIT %(limit)s", params)
            examples = tuple(map(row_of, cur))
            if apply and removed:
                c.execute(f"UPDATE dispatcher.commands SET retired = %(why)s {_NOT_IN_JOB}", params)
    finally:
        with session.read("compare the job") as conn:
            conn.execute(f"DROP TABLE IF EXISTS {_KEYS}")
    return JobDiff(
        found.changed, removed, found.returned, found.new, found.moved,
        tuple(found.examples), examples, apply, found.at_onenet,
    )  # fmt: skip


@contextlib.contextmanager
def _step(session: Session, apply: bool, what: str) -> Iterator[Conn]:
    """One write transaction when applying; plain reads otherwise."""
    with session.write(what) if apply else session.read(what) as conn:
        yield conn


def _compare_chunk(
    conn: Conn, job: int, chunk: tuple[Command, ...], found: Found, apply: bool
) -> None:
    by_key: dict[str, Command] = {}
    for c in chunk:
        insert_params(c)  # refuses a command without a key
        by_key.setdefault(c.key, c)
    seen = {
        k
        for (k,) in conn.execute(
            f"SELECT key FROM {_KEYS} WHERE key = {ANY_KEY}", (json_of(by_key),)
        )
    }
    keys = [k for k in by_key if k not in seen]  # listed twice: only the first copy counts
    if not keys:
        return
    conn.execute(
        f"INSERT INTO {_KEYS} (key) SELECT jsonb_array_elements_text(%s::jsonb)", (json_of(keys),)
    )
    cur = conn.execute(f"{SELECT_ROWS} WHERE {KEYED}", (job, json_of(keys)))
    rows = {r.key: r for r in map(row_of, cur)}
    edits = _PostgresEdits(conn, job)
    for key in keys:
        judge(rows.get(key), by_key[key], found, edits, apply=apply)


class _PostgresEdits:
    """The edits of ``identity.judge`` on the job's rows in PostgreSQL."""

    def __init__(self, conn: Conn, job: int) -> None:
        self.conn = conn
        self.job = job

    def earlier_version(self, row: Row, command: Command) -> Row | None:
        """A retired earlier version of the row with exactly the command's fields (its keys
        ``<key>~<n>`` lie between ``<key>~`` and ``<key>~~`` in byte order)."""
        cur = self.conn.execute(
            f"{SELECT_ROWS} WHERE job_id = %s AND key > %s AND key < %s ORDER BY seq",
            (self.job, f"{row.key}~", f"{row.key}~~"),
        )
        for earlier in map(row_of, cur):
            if not differing(earlier, command):
                return earlier
        return None

    def restore(self, active: Row, earlier: Row, command: Command) -> None:
        """Retire the active row under the next free suffix; give its key back to ``earlier``."""
        self._retire_aside(active.key)
        self.conn.execute(
            "UPDATE dispatcher.commands SET key = %s, retired = NULL, source = %s, line = %s"
            " WHERE job_id = %s AND key = %s",
            (active.key, command.source, command.line, self.job, earlier.key),
        )

    def replace(self, row: Row, command: Command) -> None:
        """Keep the row as it is under ``<key>~<n>`` (retired), and insert the edited command."""
        self._retire_aside(row.key)
        insert_new(self.conn, self.job, [command])

    def take_back(self, row: Row, command: Command) -> None:
        """The retired row active again, at the job's place."""
        self.conn.execute(
            "UPDATE dispatcher.commands SET retired = NULL, source = %s, line = %s"
            " WHERE job_id = %s AND key = %s",
            (command.source, command.line, self.job, row.key),
        )

    def move(self, row: Row, command: Command) -> None:
        """The row at the job's place."""
        self.conn.execute(
            "UPDATE dispatcher.commands SET source = %s, line = %s WHERE job_id = %s AND key = %s",
            (command.source, command.line, self.job, row.key),
        )

    def _retire_aside(self, key: str) -> None:
        """Move the row of ``key``, as it is, to the next free ``<key>~<n>`` (retired if
        active)."""
        n = 1
        exists = "SELECT 1 FROM dispatcher.commands WHERE job_id = %s AND key = %s"
        while self.conn.execute(exists, (self.job, f"{key}~{n}")).fetchone():
            n += 1
        self.conn.execute(
            "UPDATE dispatcher.commands SET key = %s, retired = COALESCE(retired, %s)"
            " WHERE job_id = %s AND key = %s",
            (f"{key}~{n}", Retired.CHANGED.value, self.job, key),
        )

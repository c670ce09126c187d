"""The PostgreSQL ledger's commands table as SQL: registering (and queueing) commands in one
statement, rows read a page at a time, counts; and the send queue.

Commands go in as one statement per batch (``INSERT … SELECT``, its rows one JSON parameter:
postgres_batch.py), never a statement per row: a batch is one round trip. A new row's ``seq`` is
the job's ``max(seq)`` plus its place among the batch's new keys, inside the writing transaction,
so that the numbers are gapless, as SQLite's are (the job's lock keeps any other writer out).

The send queue (queue.py's, for PostgreSQL) is a temporary table of the ledger's session: never in
the database, gone when the ledger is closed. Functions over a connection, inside the ledger's
reads and write transactions (postgres.py); ``job`` is the job's id.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Final

from dispatcher.ledger.columns import (
    INSERT_COLUMNS,
    ROW_COLUMNS,
    CommandColumns,
    command_of,
    insert_params,
    row_of,
)
from dispatcher.ledger.postgres_batch import KEYED, from_rows, json_of
from dispatcher.ledger.postgres_session import Conn
from dispatcher.ledger.records import Row, Status

if TYPE_CHECKING:
    from dispatcher.model.command import Command

__all__ = [
    "PAGE",
    "SELECT_ROWS",
    "clear_queue",
    "count_by_retry_job",
    "count_by_status",
    "count_handed_over",
    "count_rows",
    "insert_new",
    "page_of_queue",
    "page_of_rows",
    "register",
    "rows_of",
    "states_of",
    "uuids_of",
]

PAGE: Final = 1000  # rows (or queued commands) read at a time
SELECT_ROWS: Final = f"SELECT {', '.join(ROW_COLUMNS)} FROM dispatcher.commands"
ACTIVE: Final = "retired IS NULL"
_STATUS: Final = {s.value: s for s in Status}
_INTS: Final = frozenset(
    {"obj_id", "obj_inst_id", "res_id", "retry", "timeout", "trigger_msg", "line", "mode", "step"}
)
# The batch's commands (CommandColumns, as JSON: postgres_batch.py), in the order given (ord).
_GIVEN: Final = (
    "SELECT * FROM "
    + from_rows(
        ", ".join(f"{c} {'int8' if c in _INTS else 'text'}" for c in INSERT_COLUMNS), "%(rows)s"
    )
    + " AS g"
)
_COLUMNS: Final = ", ".join(INSERT_COLUMNS)
_QUEUE: Final = "pg_temp.dispatcher_send_queue"
_QUEUE_COLUMNS: Final = ", ".join(
    c + (" bigint" if c in _INTS else ' text COLLATE "C"') for c in INSERT_COLUMNS
)
_CREATE_QUEUE: Final = (
    f"CREATE TEMP TABLE dispatcher_send_queue (pos bigint PRIMARY KEY, {_QUEUE_COLUMNS})",
    "CREATE INDEX dispatcher_send_queue_step ON pg_temp.dispatcher_send_queue (step, pos)",
)


def _register_sql(queue: bool) -> str:
    """Insert the batch's new keys (the first copy of each), numbered on from the job's last
    seq; with ``queue``, append the whole batch to the send queue too. Gives how many were new."""
    queued = (
        f", queued AS (INSERT INTO {_QUEUE} (pos, {_COLUMNS}) SELECT"
        f" (SELECT COALESCE(max(pos), 0) FROM {_QUEUE}) + ord, {_COLUMNS} FROM given)"
    )
    return (
        f"WITH given AS ({_GIVEN}),"
        " fresh AS (SELECT DISTINCT ON (key) * FROM given g WHERE NOT EXISTS (SELECT 1 FROM"
        " dispatcher.commands c WHERE c.job_id = %(job)s AND c.key = g.key) ORDER BY key, ord),"
        f" added AS (INSERT INTO dispatcher.commands (job_id, seq, {_COLUMNS})"
        " SELECT %(job)s, (SELECT COALESCE(max(seq), 0) FROM dispatcher.commands"
        f" WHERE job_id = %(job)s) + row_number() OVER (ORDER BY ord), {_COLUMNS} FROM fresh"
        f" RETURNING 1){queued if queue else ''} SELECT count(*) FROM added"
    )


_REGISTER: Final = _register_sql(queue=False)
_REGISTER_AND_QUEUE: Final = _register_sql(queue=True)


def register(
    conn: Conn, job: int, cmds: Sequence[Command], *, queue: bool = False, make_queue: bool = False
) -> list[Status]:
    """Insert new commands as pending (inside the caller's transaction), and with ``queue`` put
    them all on the send queue (made first when ``make_queue``); each one's status, in order."""
    if make_queue:
        for statement in _CREATE_QUEUE:
            conn.execute(statement)
    if insert_new(conn, job, cmds, queue=queue) == len(cmds):
        return [Status.PENDING] * len(cmds)  # all new: the common case, no lookup
    keys = [c.key for c in cmds]
    now = states_of(conn, job, keys)
    return [now[k] for k in keys]


def insert_new(conn: Conn, job: int, cmds: Sequence[Command], *, queue: bool = False) -> int:
    """Insert the commands whose keys the job does not hold (the first copy of each), pending,
    numbered on from its last seq; with ``queue``, append them all to the send queue. How many
    were new."""
    params = {"rows": json_of(map(insert_params, cmds)), "job": job}
    found = conn.execute(_REGISTER_AND_QUEUE if queue else _REGISTER, params).fetchone()
    return 0 if found is None else int(found[0])


def states_of(conn: Conn, job: int, keys: Sequence[str]) -> dict[str, Status]:
    """The status of each of ``keys`` the job holds."""
    cur = conn.execute(
        f"SELECT key, status FROM dispatcher.commands WHERE {KEYED}",
        (job, json_of(keys)),
    )
    return {k: _STATUS[s] for k, s in cur}


def page_of_rows(
    conn: Conn,
    job: int,
    statuses: Collection[Status] | None,
    retired: bool | None,
    after: int,
    size: int = PAGE,
) -> list[Row]:
    """Up to ``size`` rows after seq ``after``, in job order, of ``statuses`` (None: any) and
    ``retired`` (None: any, False: active, True: retired)."""
    where = ["job_id = %(job)s", "seq > %(after)s"]
    params: dict[str, object] = {"job": job, "after": after, "size": size}
    if statuses is not None:
        params["statuses"] = sorted({Status(s).value for s in statuses})
        where.append("status = ANY(%(statuses)s)")
    if retired is not None:
        where.append("retired IS NOT NULL" if retired else ACTIVE)
    sql = f"{SELECT_ROWS} WHERE {' AND '.join(where)} ORDER BY seq LIMIT %(size)s"
    return [row_of(t) for t in conn.execute(sql, params)]


def rows_of(conn: Conn, job: int, keys: Sequence[str]) -> list[Row]:
    """The rows of ``keys`` (those the job holds), in job order."""
    sql = f"{SELECT_ROWS} WHERE {KEYED} ORDER BY seq"
    return [row_of(t) for t in conn.execute(sql, (job, json_of(keys)))]


def uuids_of(conn: Conn, job: int, imei: str) -> set[str]:
    """Every uuid held for one device (retired rows too)."""
    cur = conn.execute(
        "SELECT uuid FROM dispatcher.commands WHERE job_id = %s AND imei = %s AND uuid IS NOT NULL",
        (job, imei),
    )
    return {u for (u,) in cur}


def count_by_status(conn: Conn, job: int) -> dict[Status, int]:
    """How many active rows are in each status (every status present)."""
    counts = dict.fromkeys(Status, 0)
    sql = (
        f"SELECT status, count(*) FROM dispatcher.commands WHERE job_id = %s AND {ACTIVE}"
        " GROUP BY status"
    )
    for status, n in conn.execute(sql, (job,)):
        counts[_STATUS[status]] = int(n)
    return counts


def count_handed_over(conn: Conn, job: int) -> int:
    """How many active rows kept their outcome when handed to a retry job."""
    sql = (
        f"SELECT count(*) FROM dispatcher.commands WHERE job_id = %s AND {ACTIVE}"
        " AND retried_in IS NOT NULL AND status NOT IN ('accepted', 'retried')"
    )
    return _one_int(conn, sql, job)


def count_by_retry_job(conn: Conn, job: int) -> dict[str, int]:
    """The retry jobs active rows were handed to, each with how many, first handed first."""
    sql = (
        f"SELECT retried_in, count(*) FROM dispatcher.commands WHERE job_id = %s AND {ACTIVE}"
        " AND retried_in IS NOT NULL GROUP BY retried_in ORDER BY min(seq)"
    )
    return {str(path): int(n) for path, n in conn.execute(sql, (job,))}


def count_rows(conn: Conn, job: int) -> int:
    """How many rows the job has, retired ones included."""
    return _one_int(conn, "SELECT count(*) FROM dispatcher.commands WHERE job_id = %s", job)


def page_of_queue(
    conn: Conn, job: int, step: int, product: str | None, after: int, size: int = PAGE
) -> list[tuple[int, Command, Status]]:
    """Up to ``size`` queued commands of ``step`` (of ``product``; None: any) after position
    ``after``, in queue order: (position, command, status now)."""
    sql = (
        f"SELECT q.pos, c.status, {', '.join(f'q.{c}' for c in INSERT_COLUMNS)} FROM {_QUEUE} q"
        " JOIN dispatcher.commands c ON c.job_id = %(job)s AND c.key = q.key"
        " WHERE q.step = %(step)s AND q.pos > %(after)s"
        " AND (%(product)s::text IS NULL OR COALESCE(q.product, '') = %(product)s)"
        " ORDER BY q.pos LIMIT %(size)s"
    )
    params = {"job": job, "step": step, "after": after, "product": product, "size": size}
    return [
        (pos, command_of(CommandColumns._make(rest)), _STATUS[status])
        for pos, status, *rest in conn.execute(sql, params)
    ]


def clear_queue(conn: Conn, product: str | None) -> None:
    """Empty the queue (of ``product``'s commands; None: all of it)."""
    if product is None:
        conn.execute(f"DELETE FROM {_QUEUE}")
    else:
        conn.execute(f"DELETE FROM {_QUEUE} WHERE COALESCE(product, '') = %s", (product,))


def _one_int(conn: Conn, sql: str, job: int) -> int:
    found = conn.execute(sql, (job,)).fetchone()
    return 0 if found is None else int(found[0])

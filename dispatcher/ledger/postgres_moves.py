"""The lifecycle table (lifecycle.py) as PostgreSQL: the only statements that change a row's
``status`` in the PostgreSQL ledger (moves.py's, one statement per batch).

A batch is one ``UPDATE … FROM unnest(…)`` that changes only rows in a state the table allows;
fewer rows changed than asked makes the whole transaction roll back with LifecycleError (a key
the job does not hold: LedgerError), as in SQLite. SQLite applies a batch row by row, so a key
given twice is changed twice; here a batch is split into rounds in which each key is once, run in
order, which gives the same rows. Functions over a connection, inside the ledger's write
transactions (postgres.py); ``job`` is the job's id.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from functools import cache
from typing import Final, TypeVar

from dispatcher.errors import LedgerError
from dispatcher.ledger.lifecycle import TABLE, Event, LifecycleError, event_of, keeps, sources
from dispatcher.ledger.moves import states_sql
from dispatcher.ledger.postgres_session import Conn
from dispatcher.ledger.postgres_table import KEYED, states_of
from dispatcher.ledger.records import InFlight, Result, Status

__all__ = [
    "apply_event",
    "floats",
    "hand_over",
    "mark_in_flight",
    "record_outcomes",
    "refuse",
    "rounds",
    "update",
]

T = TypeVar("T")


def by_key(
    arrays: str, columns: str, assign: str, where: str = "", *, status: str | None = None
) -> str:
    """``UPDATE … SET [status = status,] assign`` of the job's rows whose keys ``unnest(arrays)
    AS (columns)`` (the first column: the key) gives, each row reached by its key's unique index,
    then by its ``ctid``: a plan that holds whatever the planner's statistics say (a new job's
    rows, or a new database's, look like none at all, and a plan that scans the job's rows for
    each batch would cost a thousand times more). Parameters: the job, the arrays, then
    ``assign``'s."""
    update = "UPDATE dispatcher.commands c SET"
    if status is not None:  # a move of the lifecycle table's (this module's alone)
        update = f"UPDATE dispatcher.commands c SET status = {status},"
    return (
        "WITH v AS MATERIALIZED (SELECT u.*, (SELECT x.ctid FROM dispatcher.commands x"
        " WHERE x.job_id = %s AND x.key = u.key) AS tid"
        f" FROM unnest({arrays}) AS u({columns}))"
        f" {update} {assign} FROM v WHERE c.ctid = v.tid{where}"
    )


_MARK: Final = by_key(
    "%s::text[], %s::float8[], %s::text[], %s::text[], %s::int8[], %s::float8[]",
    "key, at, valid, expired, run, server_at",
    "first_attempt_at = COALESCE(c.first_attempt_at, v.at), last_attempt_at = v.at,"
    " sent_valid_time = v.valid, sent_expired_time = v.expired,"
    " run_id = v.run, first_server_at = COALESCE(c.first_server_at, v.server_at),"
    " last_server_at = v.server_at",
    f" AND c.status IN {states_sql(sources(Event.SEND))}",
    status="'in_flight'",
)
# A step held back (and the like): each row to the state the table gives its state before.
_MIXED: Final = by_key(
    "%s::text[], %s::text[], %s::int8[], %s::text[], %s::text[], %s::int8[]",
    "key, status, errno, error, uuid, attempts",
    "errno = v.errno, error = v.error, uuid = v.uuid, attempts = c.attempts + v.attempts",
    status="v.status",
)
_MOVE: Final = by_key(
    "%s::text[], %s::text[]", "key, status", "error = COALESCE(%s, c.error)", status="v.status"
)
_HAND_OVER: Final = by_key(
    "%s::text[], %s::text[]", "key, status", "retried_in = %s", status="v.status"
)


@cache
def _outcome_sql(event: Event) -> str:
    """Outcomes of ``event``: every allowed state goes to the one target of the event."""
    (goes_to,) = set(TABLE[event].values())
    return by_key(
        "%s::text[], %s::int8[], %s::text[], %s::text[], %s::int8[], %s::float8[],"
        " %s::float8[], %s::int8[]",
        "key, errno, error, uuid, attempts, at, latency, reconciled",
        "errno = v.errno, error = v.error, uuid = v.uuid, attempts = c.attempts + v.attempts,"
        " first_attempt_at = COALESCE(c.first_attempt_at, v.at),"
        " last_attempt_at = CASE WHEN v.attempts > 0 OR c.last_attempt_at IS NULL THEN v.at"
        " ELSE c.last_attempt_at END, latency_ms = v.latency, reconciled = v.reconciled",
        f" AND c.status IN {states_sql(sources(event))}",
        status=f"'{goes_to.value}'",
    )


def rounds(items: Sequence[T], key: Callable[[T], str]) -> list[Sequence[T]]:
    """``items`` in rounds in which each key is once (its n-th item in round n), in order."""
    keys = [key(i) for i in items]
    if len(set(keys)) == len(keys):
        return [items]  # the common case: every key once
    found: list[list[T]] = []
    seen: dict[str, int] = defaultdict(int)
    for k, item in zip(keys, items, strict=True):
        n = seen[k]
        seen[k] += 1
        if n == len(found):
            found.append([])
        found[n].append(item)
    return list(found)


def floats(values: Sequence[float | None]) -> list[float | None]:
    """Times as floats (an int among floats would make psycopg refuse the array)."""
    return [None if v is None else float(v) for v in values]


def update(
    conn: Conn,
    sql: str,
    items: Sequence[T],
    key: Callable[[T], str],
    columns: Callable[[Sequence[T]], list[object]],
    job: int,
    *extra: object,
) -> int:
    """Run a :func:`by_key` update of the job ``job`` for ``items`` (round by round: rounds())
    with the arrays ``columns`` gives and ``extra`` parameters after them; how many rows it
    changed."""
    changed = 0
    for part in rounds(items, key):
        changed += conn.execute(sql, (job, *columns(part), *extra)).rowcount
    return changed


def mark_in_flight(conn: Conn, job: int, items: Sequence[InFlight]) -> None:
    """The SEND event: each command in flight, with the times that go on the wire."""

    def columns(part: Sequence[InFlight]) -> list[object]:
        return [[i.key for i in part], floats([i.at for i in part]),
                [i.sent_valid_time for i in part], [i.sent_expired_time for i in part],
                [i.run_id for i in part], floats([i.server_at for i in part])]  # fmt: skip

    if items and update(conn, _MARK, items, _key, columns, job) != len(items):
        refuse(conn, job, [i.key for i in items], Event.SEND, Status.IN_FLIGHT)


def record_outcomes(conn: Conn, job: int, results: Sequence[Result]) -> None:
    """Outcomes, each by its event (given, or the one of its status), event by event."""
    by_event: dict[Event, list[Result]] = defaultdict(list)
    for r in results:
        by_event[r.event or event_of(r.status)].append(r)
    for event, group in by_event.items():
        if keeps(event):  # held back: a failed command keeps its own
            _record_mixed(conn, job, event, group)
            continue
        if update(conn, _outcome_sql(event), group, _key, _outcomes, job) != len(group):
            (goes_to,) = set(TABLE[event].values())
            refuse(conn, job, [r.key for r in group], event, goes_to)


def _outcomes(part: Sequence[Result]) -> list[object]:
    return [[r.key for r in part], [r.errno for r in part], [r.error for r in part],
            [r.uuid for r in part], [r.attempts for r in part], floats([r.at for r in part]),
            floats([r.latency_ms for r in part]), [int(r.reconciled) for r in part]]  # fmt: skip


def _record_mixed(conn: Conn, job: int, event: Event, group: Sequence[Result]) -> None:
    """Outcomes of an event that leaves some states as they are (a step held back)."""
    keys = [r.key for r in group]
    now = _states(conn, job, keys)
    _check(now, keys, event)
    kept = keeps(event)
    moved = [r for r in group if now[r.key] not in kept]

    def columns(part: Sequence[Result]) -> list[object]:
        return [[r.key for r in part], [TABLE[event][now[r.key]].value for r in part],
                [r.errno for r in part], [r.error for r in part], [r.uuid for r in part],
                [r.attempts for r in part]]  # fmt: skip

    update(conn, _MIXED, moved, _key, columns, job)


def apply_event(
    conn: Conn, job: int, keys: Sequence[str], event: Event, *, error: str | None = None
) -> list[Status]:
    """``event`` for each of ``keys`` (a bulk event); ``error``, if given, is written to the rows
    it moves. Each key's state before, in order."""
    now = _states(conn, job, keys)
    _check(now, keys, event)
    kept = keeps(event)
    moved = [k for k in dict.fromkeys(keys) if now[k] not in kept]  # the same move once
    if moved:
        targets = [TABLE[event][now[k]].value for k in moved]
        conn.execute(_MOVE, (job, moved, targets, error))
    return [now[k] for k in keys]


def hand_over(conn: Conn, job: int, keys: Sequence[str], job_path: str) -> None:
    """The HAND_OVER event: each command written into the retry job at ``job_path``; one handed
    to another retry job already is never handed to a second one."""
    now = _states(conn, job, keys)
    _check(now, keys, Event.HAND_OVER)
    unique = list(dict.fromkeys(keys))
    cur = conn.execute(
        f"SELECT key, retried_in FROM dispatcher.commands WHERE {KEYED}"
        " AND retried_in IS NOT NULL AND retried_in <> %s",
        (job, unique, job_path),
    )
    elsewhere = sorted(unique.index(k) for k, _ in cur)
    if elsewhere:
        raise LifecycleError(
            f"{len(elsewhere)} commands are handed to another retry job already"
            f" (e.g. {unique[elsewhere[0]]})"
        )
    targets = [TABLE[Event.HAND_OVER][now[k]].value for k in unique]
    conn.execute(_HAND_OVER, (job, unique, targets, job_path))


def refuse(conn: Conn, job: int, keys: Sequence[str], event: Event, goes_to: Status) -> None:
    """Some rows were not changed by ``event``: name one (the transaction rolls back)."""
    now = _states(conn, job, keys)  # raises for keys the job does not hold
    bad = [k for k in keys if now[k] is not goes_to]
    first = bad[0] if bad else keys[0]
    raise LifecycleError(
        f"{event.value!r} is not allowed for {len(bad) or 'some'} commands: {first} is"
        f" {now[first].value}"
    )


def _states(conn: Conn, job: int, keys: Sequence[str]) -> dict[str, Status]:
    found = states_of(conn, job, list(dict.fromkeys(keys)))
    missing = len(set(keys) - found.keys())
    if missing:
        raise LedgerError(f"{missing} of {len(set(keys))} keys are not in the ledger")
    return found


def _check(now: dict[str, Status], keys: Sequence[str], event: Event) -> None:
    allowed = TABLE[event]
    bad = [k for k in keys if now[k] not in allowed]
    if bad:
        raise LifecycleError(
            f"{event.value!r} is not allowed for {len(bad)} commands:"
            f" {bad[0]} is {now[bad[0]].value}"
        )


def _key(item: InFlight | Result) -> str:
    return item.key

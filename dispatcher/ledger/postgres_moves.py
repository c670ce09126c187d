"""The lifecycle table (lifecycle.py) as PostgreSQL: the only statements that change a row's
``status`` in the PostgreSQL ledger (moves.py's, one statement per batch: postgres_batch.py).

A batch's statement changes only rows in a state the table allows; fewer rows changed than asked
makes the whole transaction roll back with LifecycleError (a key the job does not hold:
LedgerError), as in SQLite. Functions over a connection, inside the ledger's write transactions
(postgres.py); ``job`` is the job's id.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from functools import cache
from typing import Final

from dispatcher.errors import LedgerError
from dispatcher.ledger.lifecycle import (
    TABLE,
    Event,
    LifecycleError,
    check_allowed,
    event_of,
    keeps,
    sources,
)
from dispatcher.ledger.moves import states_sql
from dispatcher.ledger.postgres_batch import KEYED, by_key, json_of, update
from dispatcher.ledger.postgres_session import Conn
from dispatcher.ledger.postgres_table import states_of
from dispatcher.ledger.records import InFlight, Result, Status

__all__ = ["apply_event", "hand_over", "mark_in_flight", "record_outcomes", "refuse"]

_MARK: Final = by_key(
    "key text, at float8, valid text, expired text, run int8, server_at float8",
    "first_attempt_at = COALESCE(c.first_attempt_at, v.at), last_attempt_at = v.at,"
    " sent_valid_time = v.valid, sent_expired_time = v.expired, run_id = v.run,"
    " first_server_at = COALESCE(c.first_server_at, v.server_at), last_server_at = v.server_at",
    f" AND c.status IN {states_sql(sources(Event.SEND))}",
    status="'in_flight'",
)
_OUTCOMES: Final = (
    "key text, errno int8, error text, uuid text, attempts int8, at float8, latency float8,"
    " reconciled int8"
)
# A step held back (and the like): each row to the state the table gives its state before.
_MIXED: Final = by_key(
    "key text, status text, errno int8, error text, uuid text, attempts int8",
    "errno = v.errno, error = v.error, uuid = v.uuid, attempts = c.attempts + v.attempts",
    status="v.status",
)
_TARGETS: Final = "key text, status text"
_MOVE: Final = by_key(_TARGETS, "error = COALESCE(%s, c.error)", status="v.status")
_HAND_OVER: Final = by_key(_TARGETS, "retried_in = %s", status="v.status")


@cache
def _outcome_sql(event: Event) -> str:
    """Outcomes of ``event``: every allowed state goes to the one target of the event."""
    (goes_to,) = set(TABLE[event].values())
    return by_key(
        _OUTCOMES,
        "errno = v.errno, error = v.error, uuid = v.uuid, attempts = c.attempts + v.attempts,"
        " first_attempt_at = COALESCE(c.first_attempt_at, v.at),"
        " last_attempt_at = CASE WHEN v.attempts > 0 OR c.last_attempt_at IS NULL THEN v.at"
        " ELSE c.last_attempt_at END, latency_ms = v.latency, reconciled = v.reconciled",
        f" AND c.status IN {states_sql(sources(event))}",
        status=f"'{goes_to.value}'",
    )


def mark_in_flight(conn: Conn, job: int, items: Sequence[InFlight]) -> None:
    """The SEND event: each command in flight, with the times that go on the wire."""
    if items and update(conn, _MARK, items, _key, _mark, job) != len(items):
        refuse(conn, job, [i.key for i in items], Event.SEND, Status.IN_FLIGHT)


def _mark(i: InFlight) -> tuple[object, ...]:
    return (i.key, i.at, i.sent_valid_time, i.sent_expired_time, i.run_id, i.server_at)


def record_outcomes(conn: Conn, job: int, results: Sequence[Result]) -> None:
    """Outcomes, each by its event (given, or the one of its status), event by event."""
    by_event: dict[Event, list[Result]] = defaultdict(list)
    for r in results:
        by_event[r.event or event_of(r.status)].append(r)
    for event, group in by_event.items():
        if keeps(event):  # held back: a failed command keeps its own
            _record_mixed(conn, job, event, group)
            continue
        if update(conn, _outcome_sql(event), group, _key, _outcome, job) != len(group):
            (goes_to,) = set(TABLE[event].values())
            refuse(conn, job, [r.key for r in group], event, goes_to)


def _outcome(r: Result) -> tuple[object, ...]:
    return (r.key, r.errno, r.error, r.uuid, r.attempts, r.at, r.latency_ms, int(r.reconciled))


def _record_mixed(conn: Conn, job: int, event: Event, group: Sequence[Result]) -> None:
    """Outcomes of an event that leaves some states as they are (a step held back)."""
    keys = [r.key for r in group]
    now = _states(conn, job, keys)
    check_allowed(now, keys, event)
    kept = keeps(event)
    moved = [r for r in group if now[r.key] not in kept]

    def row(r: Result) -> tuple[object, ...]:
        return (r.key, TABLE[event][now[r.key]].value, r.errno, r.error, r.uuid, r.attempts)

    update(conn, _MIXED, moved, _key, row, job)


def apply_event(
    conn: Conn, job: int, keys: Sequence[str], event: Event, *, error: str | None = None
) -> list[Status]:
    """``event`` for each of ``keys`` (a bulk event); ``error``, if given, is written to the rows
    it moves. Each key's state before, in order."""
    now = _states(conn, job, keys)
    check_allowed(now, keys, event)
    kept = keeps(event)
    moved = [k for k in dict.fromkeys(keys) if now[k] not in kept]  # the same move once
    if moved:
        targets = json_of((k, TABLE[event][now[k]].value) for k in moved)
        conn.execute(_MOVE, (job, targets, error))
    return [now[k] for k in keys]


def hand_over(conn: Conn, job: int, keys: Sequence[str], job_path: str) -> None:
    """The HAND_OVER event: each command written into the retry job at ``job_path``; one handed
    to another retry job already is never handed to a second one."""
    now = _states(conn, job, keys)
    check_allowed(now, keys, Event.HAND_OVER)
    unique = list(dict.fromkeys(keys))
    cur = conn.execute(
        f"SELECT key, retried_in FROM dispatcher.commands WHERE {KEYED}"
        " AND retried_in IS NOT NULL AND retried_in <> %s",
        (job, json_of(unique), job_path),
    )
    elsewhere = sorted(unique.index(k) for k, _ in cur)
    if elsewhere:
        raise LifecycleError(
            f"{len(elsewhere)} commands are handed to another retry job already"
            f" (e.g. {unique[elsewhere[0]]})"
        )
    targets = json_of((k, TABLE[Event.HAND_OVER][now[k]].value) for k in unique)
    conn.execute(_HAND_OVER, (job, targets, job_path))


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


def _key(item: InFlight | Result) -> str:
    return item.key

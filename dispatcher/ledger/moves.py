"""The lifecycle table (lifecycle.py) as SQL: the only statements that change a row's ``status``.

Each write names its event; the statement changes only rows in a state the table allows it in, and
a row in any other state makes the whole transaction roll back with :class:`LifecycleError`.
Called inside the SQLite ledger's write transactions (sqlite.py, follow_ups.py); the in-memory
ledger applies the same table to its rows (memory_table.py).
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from collections.abc import Collection, Sequence
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
from dispatcher.ledger.records import InFlight, Result, Status

__all__ = [
    "DELIVERY_STATES",
    "apply_event",
    "hand_over",
    "mark_in_flight",
    "record_outcomes",
    "refuse",
    "states_sql",
]

_CHUNK: Final = 500  # keys per `IN (...)`


def states_sql(states: Collection[Status]) -> str:
    """``('a', 'b')``: an SQL list of states (their values are fixed words, never user text)."""
    return "(" + ", ".join(f"'{s.value}'" for s in sorted(states)) + ")"


# The delivery columns are written for commands OneNET holds (status read, cancel).
DELIVERY_STATES: Final = states_sql(sources(Event.STATUS_READ) | sources(Event.CANCEL))


@cache
def _outcome_sql(event: Event) -> str:
    """One outcome of ``event``: every allowed state goes to the one target of the event."""
    (goes_to,) = set(TABLE[event].values())
    return (
        f"UPDATE commands SET status = '{goes_to.value}', errno = ?2, error = ?3, uuid = ?4,"
        " attempts = attempts + ?5, first_attempt_at = COALESCE(first_attempt_at, ?6),"
        " last_attempt_at = CASE WHEN ?5 > 0 OR last_attempt_at IS NULL THEN ?6"
        " ELSE last_attempt_at END, latency_ms = ?7, reconciled = ?8"
        f" WHERE key = ?1 AND status IN {states_sql(sources(event))}"
    )


_MARK: Final = (
    "UPDATE commands SET status = 'in_flight', first_attempt_at = COALESCE(first_attempt_at, ?1),"
    " last_attempt_at = ?1, sent_valid_time = ?2, sent_expired_time = ?3, run_id = ?4,"
    " first_server_at = COALESCE(first_server_at, ?6), last_server_at = ?6"
    f" WHERE key = ?5 AND status IN {states_sql(sources(Event.SEND))}"
)


def mark_in_flight(conn: sqlite3.Connection, items: Sequence[InFlight]) -> None:
    """The SEND event: each command in flight, with the times that go on the wire."""
    params = [
        (i.at, i.sent_valid_time, i.sent_expired_time, i.run_id, i.key, i.server_at) for i in items
    ]
    if params and conn.executemany(_MARK, params).rowcount != len(params):
        refuse(conn, [i.key for i in items], Event.SEND, Status.IN_FLIGHT)


def record_outcomes(conn: sqlite3.Connection, results: Sequence[Result]) -> None:
    """Outcomes, each by its event (given, or the one of its status)."""
    by_event: dict[Event, list[Result]] = defaultdict(list)
    for r in results:
        by_event[r.event or event_of(r.status)].append(r)
    for event, group in by_event.items():
        if keeps(event):  # held back: a failed command keeps its own
            _record_mixed(conn, event, group)
            continue
        params = [
            (r.key, r.errno, r.error, r.uuid, r.attempts, r.at, r.latency_ms, int(r.reconciled))
            for r in group
        ]
        if conn.executemany(_outcome_sql(event), params).rowcount != len(params):
            (goes_to,) = set(TABLE[event].values())
            refuse(conn, [r.key for r in group], event, goes_to)


def _record_mixed(conn: sqlite3.Connection, event: Event, group: Sequence[Result]) -> None:
    """Outcomes of an event that leaves some states as they are (a step held back)."""
    now = _states(conn, [r.key for r in group])
    check_allowed(now, [r.key for r in group], event)
    kept = keeps(event)
    conn.executemany(
        "UPDATE commands SET status = ?, errno = ?, error = ?, uuid = ?,"
        " attempts = attempts + ? WHERE key = ?",
        [
            (TABLE[event][now[r.key]].value, r.errno, r.error, r.uuid, r.attempts, r.key)
            for r in group
            if now[r.key] not in kept
        ],
    )


def apply_event(
    conn: sqlite3.Connection, keys: Sequence[str], event: Event, *, error: str | None = None
) -> list[Status]:
    """``event`` for each of ``keys`` (a bulk event: abort, resend, reconcile's missing, a wrong
    key); ``error``, if given, is written to the rows it moves. Each key's state before, in
    order."""
    now = _states(conn, keys)
    check_allowed(now, keys, event)
    kept = keeps(event)
    conn.executemany(
        "UPDATE commands SET status = ?1, error = COALESCE(?2, error) WHERE key = ?3",
        [(TABLE[event][now[k]].value, error, k) for k in keys if now[k] not in kept],
    )
    return [now[k] for k in keys]


def hand_over(conn: sqlite3.Connection, keys: Sequence[str], job_path: str) -> None:
    """The HAND_OVER event: each command written into the retry job at ``job_path``. A command
    already handed to another retry job is never handed to a second one."""
    now = _states(conn, keys)
    check_allowed(now, keys, Event.HAND_OVER)
    elsewhere = [
        k
        for k, where in _column(conn, keys, "retried_in").items()
        if where is not None and where != job_path
    ]
    if elsewhere:
        raise LifecycleError(
            f"{len(elsewhere)} commands are handed to another retry job already"
            f" (e.g. {elsewhere[0]})"
        )
    conn.executemany(
        "UPDATE commands SET status = ?, retried_in = ? WHERE key = ?",
        [(TABLE[Event.HAND_OVER][now[k]].value, job_path, k) for k in keys],
    )


def _states(conn: sqlite3.Connection, keys: Sequence[str]) -> dict[str, Status]:
    found = {k: Status(str(v)) for k, v in _column(conn, keys, "status").items()}
    missing = len(set(keys) - found.keys())
    if missing:
        raise LedgerError(f"{missing} of {len(set(keys))} keys are not in the ledger")
    return found


def _column(conn: sqlite3.Connection, keys: Sequence[str], column: str) -> dict[str, object]:
    found: dict[str, object] = {}
    unique = list(dict.fromkeys(keys))
    for i in range(0, len(unique), _CHUNK):
        part = unique[i : i + _CHUNK]
        marks = ", ".join("?" * len(part))
        found.update(
            conn.execute(f"SELECT key, {column} FROM commands WHERE key IN ({marks})", part)
        )
    return found


def refuse(conn: sqlite3.Connection, keys: Sequence[str], event: Event, goes_to: Status) -> None:
    """Some rows were not changed by ``event``: name one (the transaction rolls back)."""
    now = _states(conn, keys)  # raises for keys not in the ledger
    bad = [k for k in keys if now[k] is not goes_to]
    first = bad[0] if bad else keys[0]
    raise LifecycleError(
        f"{event.value!r} is not allowed for {len(bad) or 'some'} commands: {first} is"
        f" {now[first].value}"
    )

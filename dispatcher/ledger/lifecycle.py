"""The command lifecycle: every state a command can be in, and what each event does to it.

This table is the only door to a command's state: a ledger changes a row's ``status`` only by
applying an :class:`Event` through :func:`target` (ledger/moves.py turns the table into SQL,
ledger/memory_table.py applies it to the in-memory ledger's rows). An event the table does not
allow in a state is a programming error: :class:`LifecycleError`.

Three things lie beside the ``status`` and are changed by events too (docs: "The lifecycle"):

- *retired*: an edit (``--accept-changes``) keeps the old version as it was under ``<key>~<n>``
  (retired "changed"), a row no longer in the job is retired "removed"; the status is kept, so a
  retired command OneNET holds is still followed by ``status`` and ``cancel``.
- *handed over*: ``retry-failed`` writes a command into a retry job; a command never sent becomes
  ``retried`` and one that was sent keeps its status, both marked with the retry job's path.
- *delivery*: what OneNET says became of an accepted command (``status`` reads it, ``cancel``
  cancels it), from ``send_status``; it never changes the ``status``.

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import StrEnum
from types import MappingProxyType
from typing import Final

__all__ = [
    "KEEPS",
    "NOTES",
    "TABLE",
    "Event",
    "LifecycleError",
    "Status",
    "changing",
    "check_allowed",
    "event_of",
    "keeps",
    "markdown",
    "sources",
    "target",
]


class Status(StrEnum):
    """Where a command stands."""

    PENDING = "pending"  # not sent yet
    IN_FLIGHT = "in_flight"  # its request may be on the wire
    ACCEPTED = "accepted"  # OneNET holds it (uuid)
    REJECTED = "rejected"  # OneNET refused it (errno)
    FAILED = "failed"  # transient trouble outlasted the retries; safe to send again
    IN_DOUBT = "in_doubt"  # the answer was lost: settle against OneNET's history before resending
    EXPIRED = "expired"  # its expired_time passed before it could be sent: never sent
    RETRIED = "retried"  # never sent; handed to a retry job (retry-failed), which sends it
    SKIPPED = "skipped"  # not sent: a rollout rule stopped the run (the rule is its error)


class LifecycleError(AssertionError):
    """An event was applied to a command in a state the lifecycle does not allow it in.

    A bug, not a user's mistake: nothing of the write that asked for it is kept.
    """


class Event(StrEnum):
    """What can happen to a command."""

    SEND = "send"  # its in-flight mark, written before the request leaves
    ACCEPT = "accept"  # OneNET answered with a uuid
    REJECT = "reject"  # OneNET answered with an errno that sending again cannot fix
    FAIL = "fail"  # transient trouble outlasted its attempts; nothing was created
    LOSE = "lose"  # the answer was lost: OneNET may hold it
    UNSENT = "unsent"  # a stop came before its request left
    EXPIRE = "expire"  # its expired_time passed before it could be sent
    RECONCILE_FOUND = "reconcile: found"  # OneNET's history holds it (its uuid)
    RECONCILE_MISSING = "reconcile: missing"  # OneNET's history shows it was never created
    RECONCILE_UNSURE = "reconcile: unsure"  # the history could not say (yet)
    RESEND = "resend in doubt"  # --resend-in-doubt: the operator says it is not at OneNET
    WRONG_KEY = "wrong key"  # errno 1 on every early answer: the key, not the command
    HOLD_BACK = "step held back"  # its step before is not accepted (or delivered, if waited for)
    ABORT = "abort"  # a rollout rule or a failing canary stopped the run
    HAND_OVER = "retry-failed"  # written into a retry job, which sends it
    STATUS_READ = "status read"  # OneNET's delivery state read (dispatcher status)
    CANCEL = "cancel"  # a cancel asked of OneNET (dispatcher cancel)
    EDIT = "edit"  # --accept-changes: an edited version replaces it (the row kept, retired)
    REMOVE = "remove"  # the job file no longer lists it (the row kept, retired)


_S = Status
_NOT_SENT = (_S.PENDING, _S.FAILED, _S.SKIPPED)  # nothing of it at OneNET: may be sent
_EVERY = tuple(Status)


def _to(status: Status, *froms: Status) -> dict[Status, Status]:
    return dict.fromkeys(froms, status)


def _stay(*states: Status) -> dict[Status, Status]:
    return {s: s for s in states}


# For each event, the state each allowed state goes to. A state not listed: not allowed.
TABLE: Final[Mapping[Event, Mapping[Status, Status]]] = MappingProxyType(
    {
        Event.SEND: _to(_S.IN_FLIGHT, *_NOT_SENT, _S.IN_FLIGHT),  # in flight: a later attempt
        Event.ACCEPT: _to(_S.ACCEPTED, _S.IN_FLIGHT),
        Event.REJECT: _to(_S.REJECTED, _S.IN_FLIGHT),
        Event.FAIL: _to(_S.FAILED, _S.IN_FLIGHT),
        Event.LOSE: _to(_S.IN_DOUBT, _S.IN_FLIGHT),
        # A stop can come before the mark is written: a command not sent yet keeps its state.
        Event.UNSENT: {**_to(_S.PENDING, _S.IN_FLIGHT, _S.PENDING), **_stay(_S.FAILED, _S.SKIPPED)},
        Event.EXPIRE: _to(_S.EXPIRED, *_NOT_SENT, _S.IN_FLIGHT),
        Event.RECONCILE_FOUND: _to(_S.ACCEPTED, _S.IN_DOUBT, _S.IN_FLIGHT),
        Event.RECONCILE_MISSING: _to(_S.PENDING, _S.IN_DOUBT, _S.IN_FLIGHT),
        Event.RECONCILE_UNSURE: _to(_S.IN_DOUBT, _S.IN_DOUBT, _S.IN_FLIGHT),
        Event.RESEND: _to(_S.PENDING, _S.IN_DOUBT, _S.IN_FLIGHT),
        Event.WRONG_KEY: _to(_S.PENDING, _S.REJECTED),
        # A failed command keeps its failure: it was sent, and its errno says why it is not there.
        Event.HOLD_BACK: {**_to(_S.SKIPPED, _S.PENDING, _S.SKIPPED), **_stay(_S.FAILED)},
        Event.ABORT: {**_to(_S.SKIPPED, _S.PENDING, _S.SKIPPED), **_stay(_S.FAILED)},
        # A command never sent becomes retried (this job never sends it); one that was sent
        # keeps its outcome; one handed over already goes again only into the same file.
        Event.HAND_OVER: {
            **_to(_S.RETRIED, *_NOT_SENT, _S.RETRIED),
            **_stay(_S.REJECTED, _S.EXPIRED, _S.ACCEPTED),
        },
        Event.STATUS_READ: _stay(_S.ACCEPTED),
        Event.CANCEL: _stay(_S.ACCEPTED),
        Event.EDIT: _stay(*_EVERY),
        Event.REMOVE: _stay(*_EVERY),
    }
)

# The states an event leaves as they are, writing nothing of its own (a failed command keeps its
# errno; a delivery read or a cancel writes only the delivery columns; an edit only retires).
KEEPS: Final[Mapping[Event, frozenset[Status]]] = MappingProxyType(
    {
        Event.UNSENT: frozenset({_S.FAILED, _S.SKIPPED}),
        Event.HOLD_BACK: frozenset({_S.FAILED}),
        Event.ABORT: frozenset({_S.FAILED}),
        Event.STATUS_READ: frozenset({_S.ACCEPTED}),
        Event.CANCEL: frozenset({_S.ACCEPTED}),
        Event.EDIT: frozenset(_EVERY),
        Event.REMOVE: frozenset(_EVERY),
    }
)

# What each event means, for the docs' table.
NOTES: Final[Mapping[Event, str]] = MappingProxyType(
    {
        Event.SEND: "written before the request leaves: after a crash it is looked up, not resent",
        Event.ACCEPT: "the uuid is kept; final",
        Event.REJECT: "the errno is kept; final (retry-failed can write it into a new job)",
        Event.FAIL: "the errno or trouble is kept; the next run sends it again",
        Event.LOSE: "the next run (or this one) looks it up in OneNET's history before anything",
        Event.UNSENT: "nothing left the host; sent by the next run",
        Event.EXPIRE: "never sent; final",
        Event.RECONCILE_FOUND: "the uuid from the history; final",
        Event.RECONCILE_MISSING: "never created: sent again",
        Event.RECONCILE_UNSURE: "stays in doubt: never sent blindly",
        Event.RESEND: "only with --resend-in-doubt",
        Event.WRONG_KEY: "the run stops; sent again once the key is fixed",
        Event.HOLD_BACK: (
            "with why; sent by a rerun once the step before is accepted (delivered, under"
            " wait: delivered)"
        ),
        Event.ABORT: "with the rule; a rerun sends it; a failed command stays failed",
        Event.HAND_OVER: "the retry job's path is recorded; this job never sends it again",
        Event.STATUS_READ: "the delivery state changes, never the status",
        Event.CANCEL: "the delivery state becomes cancelled if OneNET agrees",
        Event.EDIT: "the row is kept as it was, retired; the new version is pending",
        Event.REMOVE: "the row is kept as it was, retired",
    }
)

# The event a written outcome stands for, by the status the writer reports (ledger.Result).
_OUTCOME_EVENTS: Final = MappingProxyType(
    {
        _S.ACCEPTED: Event.ACCEPT,
        _S.REJECTED: Event.REJECT,
        _S.FAILED: Event.FAIL,
        _S.IN_DOUBT: Event.LOSE,
        _S.PENDING: Event.UNSENT,
        _S.EXPIRED: Event.EXPIRE,
        _S.SKIPPED: Event.HOLD_BACK,
    }
)


def target(state: Status, event: Event) -> Status:
    """The state ``event`` takes a command in ``state`` to; LifecycleError if not allowed."""
    moves = TABLE[event]
    if state not in moves:
        raise LifecycleError(f"{event.value!r} is not allowed for a command that is {state.value}")
    return moves[state]


def sources(event: Event) -> frozenset[Status]:
    """The states ``event`` is allowed in."""
    return frozenset(TABLE[event])


def changing(event: Event) -> dict[Status, Status]:
    """The states ``event`` moves to another one, with where to."""
    return {s: t for s, t in TABLE[event].items() if s is not t}


def keeps(event: Event) -> frozenset[Status]:
    """The states ``event`` is allowed in but leaves as they are, writing nothing of its own."""
    return KEEPS.get(event, frozenset())


def check_allowed(now: Mapping[str, Status], keys: Sequence[str], event: Event) -> None:
    """LifecycleError, naming one, when ``event`` is not allowed for some of ``keys`` in the
    states ``now`` gives them (a whole batch is refused before any row of it is written)."""
    allowed = TABLE[event]
    bad = [k for k in keys if now[k] not in allowed]
    if bad:
        raise LifecycleError(
            f"{event.value!r} is not allowed for {len(bad)} commands:"
            f" {bad[0]} is {now[bad[0]].value}"
        )


def event_of(status: Status) -> Event:
    """The event of an outcome reported as ``status`` (sent, answered, lost, expired...)."""
    if status not in _OUTCOME_EVENTS:
        raise LifecycleError(f"no event writes {status.value} as an outcome")
    return _OUTCOME_EVENTS[status]


def markdown() -> str:
    """The table as the docs print it: a row per event, a column per state."""
    names = {s: s.value.replace("_", " ") for s in Status}
    head = "| event | " + " | ".join(names[s] for s in Status) + " | what it means |"
    rule = "|---" * (len(Status) + 2) + "|"
    lines = [head, rule]
    for event in Event:
        cells = []
        for state in Status:
            if state not in TABLE[event]:
                cells.append("·")
            elif state in keeps(event):
                cells.append("kept")
            else:
                cells.append(names[TABLE[event][state]])
        lines.append(f"| {event.value} | " + " | ".join(cells) + f" | {NOTES[event]} |")
    return "\n".join(lines) + "\n"

"""What a notification tells: its event, and a ``Notice`` (the job, the counts, what needs
attention, the command to run next), the same for every target and language.

May import: nothing of dispatcher.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum

__all__ = ["EventKind", "Notice"]


class EventKind(StrEnum):
    """The events a notification is sent for (a target's ``events:`` names them, as
    ``config.NOTIFY_EVENTS`` lists them)."""

    RUN_FINISHED = "run_finished"  # a run ended by itself (not stopped by Ctrl-C or a rule)
    RUN_ABORTED = "run_aborted"  # a rollout rule or a breaker (wrong key, address) stopped it
    CANARY_VERDICT = "canary_verdict"  # a rollout's canary was judged: passed or failed
    WATCH_FINISHED = "watch_finished"  # status --watch ended: every delivery final
    VERIFY_FINISHED = "verify_finished"  # verify (or its --watch) ended


@dataclass(frozen=True, slots=True)
class Notice:
    """One event to tell: figures by name (a command's status, a delivery state or a verify
    state, as the ledger names them), what needs attention (by kind, with a count), why it
    stopped, and the command to run next."""

    event: EventKind
    job: str  # the job file, as the ledger recorded it
    ledger: str
    counts: tuple[tuple[str, int], ...]  # non-zero only, in lifecycle order
    attention: tuple[tuple[str, int], ...] = ()  # e.g. ("not_through", 12): messages.py words
    next_command: str | None = None
    reason: str | None = None  # why a run stopped, or what the canary came to
    passed: bool | None = None  # a canary's verdict (None: not a canary's notice)
    at: float = field(default_factory=time.time)  # unix seconds

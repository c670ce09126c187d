"""The notice of each event, from the ledger: its figures by ``report.summary.summarize`` and the
command to run next by ``report.next_steps`` (the rule set the command line and the HTML page
follow too), so a notification never advises otherwise than the screen.

May import: ledger, report, notify.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from dispatcher.ledger.address import LedgerAddress
from dispatcher.ledger.records import DeliveryState
from dispatcher.ledger.store import LedgerStore, Status, VerifyState
from dispatcher.notify.events import EventKind, Notice
from dispatcher.report.next_steps import After, next_steps
from dispatcher.report.summary import Summary, summarize

__all__ = ["attention_of", "ledger_notice"]

_NOT_THROUGH: Final = (Status.REJECTED, Status.FAILED, Status.EXPIRED, Status.SKIPPED)
_NOT_SENT: Final = (Status.PENDING, Status.IN_FLIGHT)
_OPEN: Final = (DeliveryState.UNREAD, DeliveryState.WAITING, DeliveryState.SENT)
_LOST: Final = (DeliveryState.EXPIRED, DeliveryState.FAILED)


def ledger_notice(
    event: EventKind,
    ledger: LedgerStore,
    path: LedgerAddress,
    after: After | None = None,
    *,
    reason: str | None = None,
    passed: bool | None = None,
) -> Notice:
    """The notice of ``event`` for the job of ``ledger`` (at ``path``): a run's by command
    status, a watch's by delivery state, a verify's by device state; ``after``: how the command
    was given, as for the command line's next steps (so that the notice advises what the screen
    does)."""
    summary = summarize(ledger)
    record = ledger.job()
    job = None if after is None else after.job
    title = job or (record.path if record is not None else str(path))
    steps = next_steps(summary, path, after)
    return Notice(
        event,
        job=title,
        ledger=str(path),
        counts=_counts(event, summary),
        attention=attention_of(summary),
        next_command=steps[0].command if steps else None,
        reason=reason,
        passed=passed,
    )


def _counts(event: EventKind, summary: Summary) -> tuple[tuple[str, int], ...]:
    found: Mapping[str, int] = summary.by_status
    if event is EventKind.WATCH_FINISHED and summary.delivery is not None:
        found = {s.value: n for s, n in summary.delivery.commands.items()}
    elif event is EventKind.VERIFY_FINISHED and summary.compliance is not None:
        found = {s.value: n for s, n in summary.compliance.by_state.items()}
    return tuple((name, n) for name, n in found.items() if n)


def attention_of(summary: Summary) -> tuple[tuple[str, int], ...]:
    """What needs a look, by kind (messages.py words each), the most urgent first."""
    counts = summary.by_status
    delivery = summary.delivery
    found = [
        ("not_through", sum(counts.get(s.value, 0) for s in _NOT_THROUGH)),
        ("in_doubt", counts.get(Status.IN_DOUBT.value, 0)),
        ("not_sent", sum(counts.get(s.value, 0) for s in _NOT_SENT) + summary.unregistered),
        ("delivery_lost", 0 if delivery is None else sum(delivery.commands[s] for s in _LOST)),
        ("delivery_open", 0 if delivery is None else sum(delivery.commands[s] for s in _OPEN)),
    ]
    compliance = summary.compliance
    if compliance is not None:
        by_state = compliance.by_state
        found.append(
            ("not_on_target", by_state[VerifyState.NOT_YET] + by_state[VerifyState.FAILED])
        )
        found.append(("never_seen", by_state[VerifyState.NEVER_SEEN]))
    return tuple((kind, n) for kind, n in found if n)

"""The figures of an in-memory ledger (figures.py and delivery.py say them in SQL): counts,
errno groups, latency ranks and the delivery breakdown, over rows given.

Pure functions of the rows: the caller gives the job's (active) rows, or every row where a
figure counts retired ones.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Final

from dispatcher.ledger.delivery import DEVICE_ORDER, DeliveryBreakdown
from dispatcher.ledger.records import (
    DeliveryState,
    LedgerStats,
    Retired,
    Row,
    Status,
    delivery_state,
)

__all__ = [
    "delivery_breakdown",
    "errno_groups",
    "latencies_at",
    "product_counts",
    "retired_counts",
    "stats",
]

_UNSETTLED: Final = frozenset({Status.PENDING, Status.IN_FLIGHT})  # no outcome yet


def stats(rows: Sequence[Row]) -> LedgerStats:
    """Figures over the (active) ``rows``."""
    firsts = [r.first_attempt_at for r in rows if r.first_attempt_at is not None]
    lasts = [r.last_attempt_at for r in rows if r.last_attempt_at is not None]
    return LedgerStats(
        total=len(rows),
        with_outcome=sum(r.status not in _UNSETTLED for r in rows),
        first_at=min(firsts, default=None),
        last_at=max(lasts, default=None),
        attempts=sum(r.attempts for r in rows),
        retries=sum(max(r.attempts - 1, 0) for r in rows),
        reconciled=sum(r.reconciled for r in rows),
        latencies=sum(r.latency_ms is not None for r in rows),
    )


def retired_counts(rows: Iterable[Row]) -> dict[str, int]:
    """How many of (every one of) ``rows`` are retired, by why: {'removed': n, 'changed': m}."""
    counts = dict.fromkeys((r.value for r in Retired), 0)
    counts.update(Counter(r.retired.value for r in rows if r.retired is not None))
    return counts


def product_counts(rows: Iterable[Row]) -> dict[str, dict[str, int]]:
    """The (active) rows by product ('': the default one, products sorted) and status."""
    found = Counter((r.command.product, r.status.value) for r in rows)
    counts: dict[str, dict[str, int]] = {}
    for (product, status), n in sorted(found.items()):
        counts.setdefault(product, {})[status] = n
    return counts


def errno_groups(rows: Iterable[Row]) -> list[tuple[int, str, int]]:
    """(errno, error text, count) for every errno of the (active) rows: by errno, then most
    common text first."""
    found = Counter((r.errno, r.error) for r in rows if r.errno is not None)
    groups = [(errno, error, n) for (errno, error), n in found.items()]
    return sorted(groups, key=lambda g: (g[0], -g[2], g[1]))


def latencies_at(rows: Iterable[Row], ranks: Sequence[int]) -> list[float]:
    """The (active) rows' latencies at 1-based ``ranks`` in ascending order."""
    ordered = sorted(r.latency_ms for r in rows if r.latency_ms is not None)
    return [ordered[rank - 1] for rank in ranks]


def delivery_breakdown(rows: Iterable[Row]) -> DeliveryBreakdown:
    """The (active) rows' accepted commands and devices by delivery state (delivery.py)."""
    commands = dict.fromkeys(DeliveryState, 0)
    worst: dict[str, int] = {}
    not_held: list[Row] = []
    confirms: Counter[str] = Counter()
    handed = 0
    for r in rows:
        if r.status is not Status.ACCEPTED or r.uuid is None:
            not_held.append(r)
            continue
        state = delivery_state(r.send_status)
        commands[state] += 1
        handed += r.retried_in is not None and state in (
            DeliveryState.EXPIRED,
            DeliveryState.FAILED,
        )
        rank = DEVICE_ORDER.index(state)  # a device counts under its least happy command
        worst[r.command.imei] = min(rank, worst.get(r.command.imei, rank))
        if r.confirm_status is not None:
            confirms[r.confirm_status] += 1
    devices = dict.fromkeys(DeliveryState, 0)
    devices.update(Counter(DEVICE_ORDER[rank] for rank in worst.values()))
    ordered = sorted(confirms.items(), key=lambda c: (-c[1], c[0]))
    return DeliveryBreakdown(
        commands, devices, len(not_held), len({r.command.imei for r in not_held}), ordered, handed
    )

"""What cancel found and did, as values its observer is told of: the plan the states read make,
and what came of one lane's cancels.

May import: ledger (records), run (cancel).
"""

from __future__ import annotations

from dataclasses import dataclass

from dispatcher.ledger.records import DeliveryState
from dispatcher.run.cancel import CancelReport

__all__ = ["CancelPlan", "LaneCancelled"]


@dataclass(frozen=True, slots=True)
class CancelPlan:
    """What the states read say: the commands that can be cancelled, and those left as they are
    (by delivery state; in doubt; never sent)."""

    title: str
    waiting: int
    devices: int
    states: tuple[tuple[DeliveryState, int], ...]  # most common first
    in_doubt: int
    unsent: int


@dataclass(frozen=True, slots=True)
class LaneCancelled:
    """What came of one lane's cancels; ``product`` names the lane when there are several;
    ``stopped`` is the reason of a stop that cut it short."""

    product: str | None
    report: CancelReport
    stopped: str | None

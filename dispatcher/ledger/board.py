"""The board runs of one product meet on to share its rate: what a member says of itself at each
beat, and what it reads of the others (run/share.py splits the rate; postgres_share.py keeps the
board in the shared PostgreSQL ledger).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

__all__ = ["BoardView", "Member", "ShareBoard"]


@dataclass(frozen=True, slots=True)
class Member:
    """One run's lane on a product's board."""

    member: str  # who: "host:pid job/lane"
    wanted: float  # the most it would send per second (its own ceiling)
    granted: float  # the most it may have sent per second over the last window
    admitted: float  # answers the server admitted per second over the last second


@dataclass(frozen=True, slots=True)
class BoardView:
    """What a beat reads: the other live members, and the limit throttles found (None: none)."""

    others: tuple[Member, ...]
    found: float | None = None


class ShareBoard(Protocol):
    """Where the runs of a product meet (blocking calls: run them off the event loop)."""

    def beat(
        self, product: str, me: Member, limit: float, decide: Callable[[BoardView], float]
    ) -> BoardView:
        """Say ``me`` is live now, read the others live now and the product's found limit
        (raised a step toward ``limit`` when no throttle came for a while), and publish
        ``decide(view)`` as what ``me`` may send from now, with no other member of ``product``
        beating in between (so that two members never take the same free rate); the view."""
        ...

    def cut(self, product: str, found: float) -> None:
        """A throttle: the product's limit is ``found`` (per second) from now."""
        ...

    def leave(self, product: str, member: str, granted: float) -> None:
        """``member`` ends, having perhaps sent ``granted`` per second in the last window: it
        wants nothing from now, and what it sent is counted one window more, then forgotten."""
        ...

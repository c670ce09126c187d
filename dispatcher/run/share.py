"""One product's rate shared by every run that sends to it, on any host.

Runs that send to one product (one key) meet on a *board* (a table of the shared PostgreSQL
ledger: ledger/postgres_share.py). Each live run's lane is a member of its product and beats
every ``interval`` seconds: it says what it wants (its own ceiling: the configured rate, or a
rollout's ramp below it, while its pace makes requests wait; a little more than it sends while it
idles, waiting on deliveries, say), what it may have sent in the last second (``granted``) and
what the server admitted of it; it reads the others'. Then:

- the product's limit is the configured rate, or lower once a throttle found the server's limit
  for the product as a whole (``found``: ``margin`` x what every member together had admitted
  when one was throttled; raised again a little at a time while no throttle comes, as each
  lane's own finder does, finder.py);
- each member's fair share is the limit split by water-filling: equal parts, a member that wants
  less leaving the rest to the others;
- a member goes *down* to its share at once, and *up* only into what the others leave free by
  what they say they may have sent in the last second. A newcomer therefore starts at what is
  free, and the total never passes the limit while shares move: the others step down at their
  next beat, say so one window later, and only then the newcomer steps up.

A run that ends leaves the board; a killed run's membership ends with its database session, a
lost host's when its beats stop, so its share returns within a few beats (the board's
``stale_s``). A run without a board (a SQLite ledger) paces its lanes alone, as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import hmac
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Final, Protocol

from dispatcher.ledger.board import BoardView, Member, ShareBoard

__all__ = ["BoardView", "Member", "RateShare", "Said", "ShareBoard", "product_id", "waterfill"]

log = logging.getLogger(__name__)

INTERVAL: Final = 1.0  # seconds between beats
_WINDOW: Final = 1.0  # the pace's window (pacing.py): a rate applied counts this long after
# And this much more: a rate is applied a moment after it is decided, and requests started before
# a step down still arrive a moment later (latency, a busy host): a newcomer waits out both.
_SLACK: Final = 1.0
# Runs on several hosts share this much of the limit: their requests' arrivals at the server
# jitter apart, and one pace's strict window is no longer the server's (alone: all of it).
SHARED: Final = 0.98
_BEAT_TIMEOUT_BEATS: Final = 3  # a beat taking longer than this many intervals has failed
_HOLD_BEATS: Final = 5  # a share of 0 holds the lane this many intervals, renewed at each beat


def product_id(key: str, base_url: str) -> str:
    """A product's name on the board: the same for every run with this key and address, and
    nothing that tells the key (an HMAC of the address under the key)."""
    digest = hmac.new(key.encode(), f"dispatcher rate share {base_url}".encode(), hashlib.sha256)
    return digest.hexdigest()[:32]


def waterfill(limit: float, wanted: Sequence[float]) -> list[float]:
    """``limit`` split among members wanting ``wanted``: equal parts, a member wanting less than
    its part getting what it wants and leaving the rest to the others."""
    shares = [0.0] * len(wanted)
    left = limit
    pending = sorted(range(len(wanted)), key=lambda i: wanted[i])
    while pending:
        part = left / len(pending)
        i = pending[0]
        if wanted[i] <= part:
            shares[i] = wanted[i]
            left -= wanted[i]
            pending.pop(0)
            continue
        for j in pending:
            shares[j] = part
        break
    return shares


@dataclass(frozen=True, slots=True)
class Said:
    """What a member says of itself at a beat: what it wants, what the server admitted of it
    (per second), and whether it was throttled since its last beat."""

    wanted: float
    admitted: float
    throttled: bool = False


class Shared(Protocol):
    """What a share steers: the lane's share of its product (lane.py)."""

    def share_to(self, rate: float | None) -> None: ...

    def hold_for(self, seconds: float) -> None: ...

    def wanted_rate(self) -> float | None: ...

    def admitted_rate(self) -> float: ...


class RateShare:
    """One lane's membership of its product's board (module docstring)."""

    def __init__(
        self,
        board: ShareBoard,
        product: str,
        member: str,
        lane: Shared,
        limit: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        margin: float = 0.97,
        interval: float = INTERVAL,
        stale_s: float = 2.0,
    ) -> None:
        self.board, self.product, self.member = board, product, member
        self.lane = lane
        self.limit = limit  # the configured rate of the product
        self.margin = margin
        self.interval = interval
        self._clock = clock
        self._applied: deque[tuple[float, float]] = deque()  # (since when, rate) applied
        self._throttled = False
        self.rate: float = 0.0  # the share applied now (0: held until the next beat)
        self.members = 1  # live members at the last beat, this one included
        self.stale_s = stale_s  # no beat through for this long: hold (under the board's stale_s)
        self._last: BoardView | None = None
        self._beat_at = -math.inf  # when a beat last got through
        self._beating = threading.Lock()  # one beat at a time (a late one may still be running)

    def throttled(self) -> None:
        """The server throttled this lane: the product's limit is cut at the next beat."""
        self._throttled = True

    def granted(self) -> float:
        """The most this member may have sent per second over the last window (and a little
        more: a rate decided is applied a moment later, back on the event loop)."""
        now = self._clock()
        applied = self._applied
        while len(applied) > 1 and applied[1][0] <= now - _WINDOW - _SLACK:
            applied.popleft()
        return max((rate for _, rate in applied), default=0.0)

    def plan(self, view: BoardView, wanted: float) -> float:
        """The share after a beat that read ``view``, this member wanting ``wanted`` (0: hold),
        recorded as this member's from now; :meth:`apply` gives it to the lane."""
        limit = self.limit if view.found is None else min(self.limit, view.found)
        if view.others:
            limit *= SHARED
        target = waterfill(
            limit, [min(wanted, limit), *(min(o.wanted, limit) for o in view.others)]
        )[0]
        free = limit - sum(o.granted for o in view.others)
        rate = min(target, free) if target > self.rate else target
        if rate < 1.0 and rate < target:
            rate = 0.0  # nothing free yet (the others step down first)
        self.members = 1 + len(view.others)
        self._set(rate, f"{self.members} live")
        return rate

    def _set(self, rate: float, why: str) -> None:
        if rate != self.rate:
            log.info("rate share of %s: %.1f/s (%s)", self.member, rate, why)
        self.rate = rate
        self._applied.append((self._clock(), rate))

    def apply(self) -> None:
        """The share planned, to the lane: its ceiling, or (0) a hold until after the next beat
        (renewed at each beat while the share is 0)."""
        if self.rate > 0:
            self.lane.share_to(self.rate)
        else:
            self.lane.hold_for(self.interval * _HOLD_BEATS)

    def said(self) -> Said:
        """What this member says at its next beat, read from its lane (on the event loop: the
        lane's pace and finder are the loop's), a throttle since the last beat taken."""
        throttled, self._throttled = self._throttled, False
        return Said(self._wanted(), self.lane.admitted_rate(), throttled)

    def beat_with(self, said: Said) -> float:
        """One beat (blocking: the board is asked; touches no lane): a throttle cuts the
        product's limit; this member said live, the others read and the share planned, with no
        other member of the product beating meanwhile (the board's); the share planned."""
        with self._beating:
            if said.throttled:
                others = self._last.others if self._last is not None else ()
                found = self.margin * (said.admitted + sum(o.admitted for o in others))
                if found > 0:
                    self.board.cut(self.product, max(found, 1.0))
            me = Member(self.member, said.wanted, self.granted(), said.admitted)
            decide = functools.partial(self._decide, wanted=said.wanted)
            self._last = self.board.beat(self.product, me, self.limit, decide)
            self._beat_at = self._clock()
            return self.rate

    def beat_once(self) -> float:
        """:meth:`said`, then :meth:`beat_with` (both here: a caller without an event loop)."""
        return self.beat_with(self.said())

    def _decide(self, view: BoardView, *, wanted: float) -> float:
        """What the board publishes of this member for ``view``: what it may send from now."""
        self.plan(view, wanted)
        return self.granted()

    def _wanted(self) -> float:
        wanted = self.lane.wanted_rate()
        return self.limit if wanted is None else min(wanted, self.limit)

    async def beat(self) -> float:
        """One beat off the event loop, its share applied on it; the share. A beat that fails,
        or takes too long, keeps the share a moment; past ``stale_s`` without one (the others
        stop counting this member soon after), the lane holds until a beat gets through: it
        never sends on a share the others no longer leave it."""
        said = self.said()
        try:
            await asyncio.wait_for(
                asyncio.to_thread(self.beat_with, said), self.interval * _BEAT_TIMEOUT_BEATS
            )
        except Exception as exc:  # TimeoutError too: the board is unreachable or stuck
            if self._clock() - self._beat_at > self.stale_s:
                if self.rate > 0:
                    log.warning(
                        "rate share of %s: the rate board cannot be reached (%s): holding"
                        " until it can", self.member, exc,
                    )  # fmt: skip
                self._set(0.0, "the board cannot be reached")
            else:
                log.info("rate share of %s: a beat failed (%s)", self.member, exc)
        self.apply()
        return self.rate

    async def keep(self, done: asyncio.Event) -> None:
        """Beat every ``interval`` until ``done``, then leave the board."""
        try:
            while not done.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(done.wait(), self.interval)
                if not done.is_set():
                    await self.beat()
        finally:
            await asyncio.shield(
                self._safely(
                    lambda: asyncio.to_thread(
                        self.board.leave, self.product, self.member, self.granted()
                    )
                )
            )

    async def _safely(self, call: Callable[[], Awaitable[object]]) -> None:
        """``call``; a failure is logged (leaving the board: the others stop counting this
        member a few beats later)."""
        try:
            await call()
        except Exception as exc:  # the board is advisory: never the reason a run stops
            log.warning("rate share of %s: the board could not be reached (%s)", self.member, exc)

"""A product's rate shared by the runs on it (run/share.py): the split, and how a member's share
moves so that the members together never pass the limit, driven beat by beat with a fake clock
over an in-memory board of several members."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import pytest
from hypothesis import given, strategies as st

from dispatcher.errors import LedgerError
from dispatcher.ledger.board import BoardView, Member
from dispatcher.run.lane import Lane
from dispatcher.run.pacing import Pace
from dispatcher.run.share import RateShare, product_id, waterfill
from tests.support.clocks import FakeClock
from tests.support.e2e import fast_settings
from tests.support.onenet import idle_client


def test_the_rate_is_split_in_equal_parts() -> None:
    assert waterfill(100, [100, 100]) == [50, 50]
    assert waterfill(90, [100, 100, 100]) == [30, 30, 30]


def test_a_member_wanting_less_leaves_the_rest_to_the_others() -> None:
    assert waterfill(100, [10, 100, 100]) == [10, 45, 45]
    assert waterfill(100, [10, 20]) == [10, 20]


@given(
    st.floats(1, 10_000),
    st.lists(st.floats(0.1, 10_000), min_size=1, max_size=8),
)
def test_the_split_never_passes_the_limit_nor_what_each_wants(
    limit: float, wanted: list[float]
) -> None:
    shares = waterfill(limit, wanted)
    assert sum(shares) <= limit * (1 + 1e-9)
    assert all(s <= w * (1 + 1e-9) for s, w in zip(shares, wanted, strict=True))
    # Nothing left unused that someone wanted.
    assert sum(shares) >= min(limit, sum(wanted)) * (1 - 1e-9)


def test_a_product_is_named_by_key_and_address_without_telling_the_key() -> None:
    a = product_id("key-one", "https://api.heclouds.com")
    assert a == product_id("key-one", "https://api.heclouds.com")
    assert a != product_id("key-two", "https://api.heclouds.com")
    assert a != product_id("key-one", "http://127.0.0.1:8080")
    assert "key-one" not in a


@dataclass
class Clock:
    now: float = 0.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Board:
    """Members by name, each as it last said (everyone live)."""

    clock: Clock = field(default_factory=Clock)
    members: dict[str, Member] = field(default_factory=dict)
    left: dict[str, float] = field(default_factory=dict)  # when each member left
    found: float | None = None

    def beat(
        self, product: str, me: Member, limit: float, decide: Callable[[BoardView], float]
    ) -> BoardView:
        for name, at in list(self.left.items()):  # a leaver counts one window more
            if at <= self.clock() - 2.0:
                del self.left[name]
                self.members.pop(name, None)
        others = tuple(m for name, m in sorted(self.members.items()) if name != me.member)
        view = BoardView(others, self.found)
        self.members[me.member] = replace(me, granted=max(me.granted, decide(view)))
        return view

    def cut(self, product: str, found: float) -> None:
        self.found = found

    def leave(self, product: str, member: str, granted: float) -> None:
        if member in self.members:
            self.members[member] = replace(self.members[member], wanted=0.0, granted=granted)
            self.left[member] = self.clock()


@dataclass
class FakeLane:
    """A lane as the share steers it: its ceiling, and holds."""

    own_ceiling: float | None = 100.0  # what it wants: its own ceiling, busy
    rate: float | None = None
    held: int = 0
    admitted: float = 0.0

    def wanted_rate(self) -> float | None:
        return self.own_ceiling

    def share_to(self, rate: float | None) -> None:
        self.rate = rate

    def hold_for(self, seconds: float) -> None:
        self.held += 1

    def admitted_rate(self) -> float:
        return self.admitted


def _member(board: Board, clock: Clock, name: str, lane: FakeLane | None = None) -> RateShare:
    return RateShare(board, "p", name, lane or FakeLane(), 100.0, clock=clock)


def _beat(share: RateShare) -> float:
    """One beat, its share applied to the lane; the share."""
    rate = share.beat_once()
    share.apply()
    return rate


def _sending(shares: list[RateShare]) -> float:
    """What the members may send together now: each its granted rate (the last window's most)."""
    return sum(s.granted() for s in shares)


def test_a_newcomer_waits_for_the_others_to_step_down_and_the_total_never_passes() -> None:
    clock = Clock()
    board = Board(clock)
    a = _member(board, clock, "a")
    assert _beat(a) == 100.0
    clock.now = 0.5
    b = _member(board, clock, "b")
    assert _beat(b) == 0.0  # nothing free: held until the next beat
    peaks = []
    for _ in range(8):
        clock.now += 0.5
        for share in (a, b):
            _beat(share)
            peaks.append(_sending([a, b]))
    assert max(peaks) <= 100.0
    assert (a.rate, b.rate) == (49.0, 49.0)  # 98% of the limit between runs: jitter's room


def test_when_a_member_leaves_the_other_takes_the_whole_rate_at_its_next_beat() -> None:
    clock = Clock()
    board = Board(clock)
    a, b = _member(board, clock, "a"), _member(board, clock, "b")
    for _ in range(6):
        clock.now += 1.0
        _beat(a)
        _beat(b)
    assert a.rate == 49.0
    board.leave("p", "b", b.granted())
    clock.now += 2.1
    clock.now += 1.0
    assert _beat(a) == 100.0


def test_a_member_ramping_leaves_what_it_does_not_want_to_the_others() -> None:
    clock = Clock()
    board = Board(clock)
    ramping = FakeLane(own_ceiling=10.0)
    a, b = _member(board, clock, "a"), _member(board, clock, "b", ramping)
    for _ in range(6):
        clock.now += 1.0
        _beat(a)
        _beat(b)
    assert (a.rate, b.rate) == (88.0, 10.0)


def test_a_throttle_cuts_the_products_limit_to_what_all_had_admitted() -> None:
    clock = Clock()
    board = Board(clock)
    lanes = [FakeLane(admitted=40.0), FakeLane(admitted=40.0)]
    a, b = (_member(board, clock, n, lane) for n, lane in zip("ab", lanes, strict=True))
    for _ in range(6):
        clock.now += 1.0
        _beat(a)
        _beat(b)
    a.throttled()
    clock.now += 1.0
    _beat(a)
    assert board.found == pytest.approx(0.97 * 80.0)
    _beat(b)
    clock.now += 1.0
    _beat(a)
    _beat(b)
    assert a.rate + b.rate <= 0.97 * 80.0 + 1e-9


_ops = st.lists(
    st.one_of(
        st.tuples(st.just("beat"), st.integers(0, 3)),
        st.tuples(st.just("join"), st.integers(0, 3)),
        st.tuples(st.just("leave"), st.integers(0, 3)),
        st.tuples(st.just("wait"), st.floats(0.05, 1.5)),
        st.tuples(st.just("ramp"), st.integers(0, 3)),
    ),
    max_size=60,
)


@given(_ops)
def test_members_joining_leaving_and_beating_in_any_order_never_pass_the_limit(
    ops: list[tuple[str, float]],
) -> None:
    clock = Clock()
    board = Board(clock)
    live: dict[int, tuple[RateShare, FakeLane]] = {}
    applied: dict[int, list[tuple[float, float]]] = {}  # member: (from when, rate the lane had)

    def record(i: int, lane: FakeLane) -> None:
        held = lane.held and lane.rate is None
        applied.setdefault(i, []).append((clock.now, 0.0 if held else (lane.rate or 0.0)))

    def peak_total() -> float:
        # Each member's most over the last second, together: what the server could see.
        total = 0.0
        for log_ in applied.values():
            inside = [r for t, r in log_ if t > clock.now - 1.0]
            before = [r for t, r in log_ if t <= clock.now - 1.0]
            total += max(inside + before[-1:], default=0.0)
        return total

    for op, arg in ops:
        i = int(arg) if op != "wait" else -1
        if op == "wait":
            clock.now += arg
        elif op == "join" and i not in live:
            lane = FakeLane()
            # each membership a name of its own (a rerun is another process: another name)
            live[i] = (_member(board, clock, f"m{i}.{len(applied)}.{clock.now}", lane), lane)
            _beat(live[i][0])
            record(i, lane)
        elif op == "beat" and i in live:
            _beat(live[i][0])
            record(i, live[i][1])
        elif op == "ramp" and i in live:
            live[i][1].own_ceiling = 20.0
        elif op == "leave" and i in live:
            share, _ = live.pop(i)
            board.leave("p", share.member, share.granted())
            applied.setdefault(i, []).append((clock.now, 0.0))
        assert peak_total() <= 100.0 + 1e-9, (op, arg, applied)


async def test_a_lane_wants_its_ceiling_while_its_pace_makes_requests_wait() -> None:
    clock = FakeClock()
    pace = Pace(10.0, clock=clock, sleep=clock.sleep)
    lane = Lane.of(idle_client(), fast_settings(rate=10.0), pace=pace)
    assert lane.wanted_rate() == 10.0  # nothing sent yet: about to send all it may
    for _ in range(30):  # a burst at the pace: requests wait their turn
        await pace.acquire()
    assert lane.wanted_rate() == 10.0
    clock.now += 5.0  # then quiet (a gated step waiting on deliveries): it leaves its share
    await pace.acquire()
    idle = lane.wanted_rate()
    assert idle is not None and idle < 10.0
    lane.limit_to(2.0)  # a ramp below: never wants more than its own ceiling
    for _ in range(5):
        await pace.acquire()
    assert lane.wanted_rate() == 2.0


@dataclass
class BrokenBoard(Board):
    """A board that answers until ``broken``, then raises as an unreachable database does."""

    broken: bool = False

    def beat(
        self, product: str, me: Member, limit: float, decide: Callable[[BoardView], float]
    ) -> BoardView:
        if self.broken:
            raise LedgerError("the rate board: connection refused")
        return super().beat(product, me, limit, decide)


async def test_a_lane_whose_board_cannot_be_reached_holds_once_the_others_stop_counting_it() -> (
    None
):
    clock = Clock()
    board = BrokenBoard(clock)
    lane = FakeLane()
    share = _member(board, clock, "a", lane)
    assert await share.beat() == 100.0 and lane.rate == 100.0
    board.broken = True
    clock.now += 1.0
    assert await share.beat() == 100.0  # one beat lost: the share is kept a moment
    held = lane.held
    clock.now += 1.5  # past stale_s without a beat: the others no longer leave it its share
    assert await share.beat() == 0.0
    assert lane.held > held  # held, and held again at each beat while the board is away
    clock.now += 1.0
    await share.beat()
    assert lane.held > held + 1
    board.broken = False
    clock.now += 1.0
    assert await share.beat() == 100.0 and lane.rate == 100.0  # back, alone: the whole rate

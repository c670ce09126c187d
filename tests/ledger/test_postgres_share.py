"""The rate board in a PostgreSQL ledger (postgres_share.py): who is live on a product, a killed
run's membership ending with its session, a leaver counted one window more, and the limit
throttles found, raised again step by step."""

from __future__ import annotations

import threading

import psycopg
import pytest

from dispatcher.errors import LedgerError
from dispatcher.ledger.address import PostgresAddress
from dispatcher.ledger.board import BoardView, Member
from dispatcher.ledger.postgres_share import PostgresShareBoard
from tests.support import postgres


def _member(name: str, wanted: float = 100.0, granted: float = 50.0) -> Member:
    return Member(name, wanted, granted, admitted=40.0)


def _others(board: PostgresShareBoard, me: str, product: str = "p") -> BoardView:
    return board.beat(product, _member(me), 100.0, lambda view: 50.0)


def _boards(n: int, **tuning: float) -> list[PostgresShareBoard]:
    address = PostgresAddress.parse(postgres.new_database())
    return [PostgresShareBoard.open(address, **tuning) for _ in range(n)]


def test_members_of_a_product_see_each_other_and_no_other_products() -> None:
    a, b, c = _boards(3)
    try:
        _others(a, "a")
        _others(c, "c", product="another")
        seen = _others(b, "b")
        assert [m.member for m in seen.others] == ["a"]
        assert seen.others[0].granted == 50.0
        assert [m.member for m in _others(a, "a").others] == ["b"]
    finally:
        for board in (a, b, c):
            board.close()


def test_what_a_member_decides_is_published_as_what_it_may_send() -> None:
    a, b = _boards(2)
    try:
        a.beat("p", _member("a", granted=10.0), 100.0, lambda view: 75.0)
        assert _others(b, "b").others[0].granted == 75.0
    finally:
        a.close()
        b.close()


def test_a_member_whose_session_ended_is_gone_at_the_next_beat() -> None:
    a, b = _boards(2)
    try:
        _others(a, "a")
        assert len(_others(b, "b").others) == 1
        a.close()  # as a killed process's session ends
        assert _others(b, "b").others == ()
    finally:
        b.close()


def test_a_member_that_left_wants_nothing_but_its_last_window_still_counts() -> None:
    a, b = _boards(2)
    try:
        _others(a, "a")
        a.leave("p", "a", 80.0)
        (left,) = _others(b, "b").others
        assert (left.wanted, left.granted) == (0.0, 80.0)
    finally:
        a.close()
        b.close()


def test_a_throttle_sets_the_found_limit_and_quiet_beats_raise_it_back() -> None:
    (a,) = _boards(1, cruise_s=0.0, period_s=0.0, gain=0.5)
    try:
        a.cut("p", 40.0)
        a.cut("p", 60.0)  # another run's cut within the second: the lower stands
        found = [_others(a, "a").found for _ in range(4)]
        assert found[0] == 40.0 * 1.5  # no cruise asked: the first beat raises it already
        assert found[1] == 40.0 * 1.5 * 1.5
        assert found[2] is None  # raised past the configured rate: forgotten
    finally:
        a.close()


def test_lanes_of_one_run_beat_at_once_on_one_board_and_every_beat_is_kept() -> None:
    (board,) = _boards(1)
    (other,) = [PostgresShareBoard.open(board.address)]
    errors: list[BaseException] = []

    def lane(product: str) -> None:
        try:
            for n in range(40):
                board.beat(
                    product, _member(f"run/{product}", granted=float(n)), 100.0, lambda v: 1.0
                )
        except BaseException as exc:  # collected: the test fails on any
            errors.append(exc)

    try:
        threads = [threading.Thread(target=lane, args=(p,)) for p in ("meters", "lights")]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        for product in ("meters", "lights"):  # committed: another session sees each lane
            seen = _others(other, "someone", product=product).others
            assert [(m.member, m.granted) for m in seen] == [(f"run/{product}", 39.0)]
    finally:
        board.close()
        other.close()


def test_a_board_whose_session_ended_connects_again_at_its_next_beat() -> None:
    (a,) = _boards(1)
    b = None
    try:
        _others(a, "a")
        with psycopg.connect(postgres_url(a)) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name LIKE 'dispatcher %% rate' AND pid <> pg_backend_pid()"
            )
        with pytest.raises(LedgerError):
            _others(a, "a")  # the beat that finds its session gone fails
        _others(a, "a")  # the next one connects again
        b = PostgresShareBoard.open(a.address)
        assert [m.member for m in _others(b, "b").others] == ["a"]
    finally:
        a.close()
        if b is not None:
            b.close()


def postgres_url(board: PostgresShareBoard) -> str:
    return board.address.conninfo

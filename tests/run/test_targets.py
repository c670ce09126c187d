"""Resolving a targets_query through its lane (run/targets.py), over a scripted device list:
every page through the lane's pace, 100 a page, up to the limit, the page-10,000 ceiling, a
refused list and a query matching nothing as clear errors, pages asked again after a backlog,
and the calls counted."""

from __future__ import annotations

import re

import orjson
import pytest
from hypothesis import given, settings, strategies as st

from dispatcher.errors import TargetsUnresolved
from dispatcher.job.query import TargetsQuery
from dispatcher.onenet.devices import Device, DevicePage, Filters
from dispatcher.run.lane import Lane
from dispatcher.run.pacing import Pace
from dispatcher.run.state import Stop
from dispatcher.run.targets import Resolved, changes, resolve
from tests.support.clocks import FakeClock
from tests.support.device_lists import fleet, imei_of, legacy_list, legacy_lister, refusal
from tests.support.e2e import fast_settings
from tests.support.onenet import Routes, idle_client

DEVICES = re.compile(r"http://onenet\.test/devices\?.*")
SETTINGS = fast_settings(rate=5.0)


async def resolved(routes: Routes, query: TargetsQuery, clock: FakeClock) -> tuple[Resolved, Pace]:
    pace = Pace(5.0, clock=clock, sleep=clock.sleep)
    lane = Lane.of(idle_client(), SETTINGS, pace=pace)
    result = await resolve(
        query, "meters", lane, legacy_lister(routes), SETTINGS.retry, stop=Stop(), sleep=clock.sleep
    )
    return result, pace


async def test_every_page_is_read_through_the_lanes_pace_and_counted() -> None:
    routes = Routes()
    routes.get(DEVICES, callback=legacy_list(fleet(450, tag_every=1)), repeat=True)
    clock = FakeClock()
    result, pace = await resolved(routes, TargetsQuery(1, tag="meters"), clock)
    assert [d.imei for d in result.devices] == [imei_of(i) for i in range(450)]
    assert (result.pages, result.calls, pace.started) == (5, 5, 5)
    assert clock.now >= 1000.0 + 4 / 5.0  # five starts at 5 a second took 0.8 s of its time
    assert result.per_thousand() == pytest.approx(1000 * 5 / 450)


async def test_the_legacy_filters_select_exactly_the_tagged_devices() -> None:
    routes = Routes()
    routes.get(DEVICES, callback=legacy_list(fleet(300, tag_every=3)), repeat=True)
    result, _ = await resolved(routes, TargetsQuery(1, tag="meters"), FakeClock())
    assert [d.imei for d in result.devices] == [imei_of(i) for i in range(0, 300, 3)]
    assert result.pages == 1  # 100 devices, and the total says there is no more


async def test_the_listing_stops_at_the_limit() -> None:
    routes = Routes()
    routes.get(DEVICES, callback=legacy_list(fleet(1000, tag_every=1)), repeat=True)
    result, _ = await resolved(routes, TargetsQuery(1, limit=150), FakeClock())
    assert len(result.devices) == 150 and result.limited
    assert result.pages == 2


async def test_a_list_without_totals_ends_at_a_short_page() -> None:
    routes = Routes()
    routes.get(DEVICES, callback=legacy_list(fleet(200), total=False), repeat=True)
    result, _ = await resolved(routes, TargetsQuery(1), FakeClock())
    assert len(result.devices) == 200
    assert result.pages == 3  # two full pages, then an empty one


async def test_a_device_listed_twice_as_pages_shift_is_taken_once() -> None:
    devices = fleet(150)
    routes = Routes()
    first = {"errno": 0, "error": "succ", "data": {"devices": devices[:100]}}
    shifted = {"errno": 0, "error": "succ", "data": {"devices": devices[99:]}}
    routes.get(DEVICES, body=orjson.dumps(first))
    routes.get(DEVICES, body=orjson.dumps(shifted))
    result, _ = await resolved(routes, TargetsQuery(1), FakeClock())
    assert [d.imei for d in result.devices] == [imei_of(i) for i in range(150)]


async def test_a_backlog_answer_is_asked_again_and_counted() -> None:
    routes = Routes()
    routes.get(DEVICES, body=refusal(7, "service internal error"))
    routes.get(DEVICES, callback=legacy_list(fleet(10)), repeat=True)
    result, _ = await resolved(routes, TargetsQuery(1), FakeClock())
    assert len(result.devices) == 10
    assert (result.pages, result.calls) == (1, 2)


async def test_a_refused_list_names_the_product_and_the_errno() -> None:
    routes = Routes()
    routes.get(DEVICES, body=refusal(1, "auth failed"), repeat=True)
    with pytest.raises(TargetsUnresolved) as caught:
        await resolved(routes, TargetsQuery(1, tag="meters"), FakeClock())
    assert caught.value.errno == 1
    assert "product meters" in str(caught.value) and "errno 1" in str(caught.value)
    assert len(routes.sent) == 1  # a business errno is not asked again


async def test_a_query_matching_nothing_says_so_with_its_filters() -> None:
    routes = Routes()
    routes.get(DEVICES, callback=legacy_list(fleet(10)), repeat=True)
    with pytest.raises(TargetsUnresolved) as caught:
        await resolved(routes, TargetsQuery(1, tag="valves", online=True), FakeClock())
    assert str(caught.value) == (
        "the query matched no device of product meters: tag=valves, online=true"
    )


class Endless:
    """A list that always has another full page (a fleet past 10,000 pages)."""

    def __init__(self) -> None:
        self.asked: list[int] = []

    async def page(self, filters: Filters, number: int) -> DevicePage:
        self.asked.append(number)
        devices = tuple(Device(f"{number:07d}{i:08d}", str(i)) for i in range(100))
        return DevicePage(devices, 100, None)


async def test_page_10000_with_more_left_says_to_narrow_the_query() -> None:
    clock = FakeClock()
    lane = Lane.of(idle_client(), fast_settings(), pace=Pace(None))
    source = Endless()
    with pytest.raises(TargetsUnresolved, match=r"more than 10,000 pages.*narrow it"):
        await resolve(
            TargetsQuery(1), "", lane, source, SETTINGS.retry, stop=Stop(), sleep=clock.sleep
        )
    assert source.asked[-1] == 10_000


def test_changes_says_what_the_query_would_add_and_drop() -> None:
    today = [Device("b", "2"), Device("c", "3")]
    found = changes(["a", "b"], today)
    assert [d.imei for d in found.added] == ["c"]
    assert found.dropped == ("a",)


@settings(max_examples=30, deadline=None)
@given(
    size=st.integers(0, 450),
    every=st.integers(1, 4),
    limit=st.one_of(st.none(), st.integers(1, 500)),
)
async def test_a_query_finds_the_matching_devices_in_order_up_to_its_limit(
    size: int, every: int, limit: int | None
) -> None:
    routes = Routes()
    routes.get(DEVICES, callback=legacy_list(fleet(size, tag_every=every)), repeat=True)
    matching = [imei_of(i) for i in range(0, size, every)]
    query = TargetsQuery(1, tag="meters", limit=limit)
    if not matching:
        with pytest.raises(TargetsUnresolved, match="matched no device"):
            await resolved(routes, query, FakeClock())
        return
    result, pace = await resolved(routes, query, FakeClock())
    taken = matching if limit is None else matching[:limit]
    assert [d.imei for d in result.devices] == taken
    assert result.calls == result.pages == pace.started == len(routes.sent)
    # a page of 100 per call: no more pages than the devices taken need, and one at least
    assert result.pages <= max(1, -(-len(taken) // 100))

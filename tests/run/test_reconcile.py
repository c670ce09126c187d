"""Settling in-doubt commands against OneNET's history (a scripted OneNET, over the wire): found,
missing, unreachable, searched from where and by whose clock, paced, stopped, logged."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

import pytest

from dispatcher.run.pacing import Pace
from dispatcher.run.state import Stop
from dispatcher.times import BEIJING
from tests.support.scripted import Hold
from tests.support.settling import (
    FIRST_ATTEMPT,
    IMEI,
    OTHER,
    found_uuids,
    history_of,
    item,
    make_row,
    settle,
)


async def test_a_command_in_the_history_is_found_with_its_uuid() -> None:
    row = make_row()
    report = await settle([row], history_of({IMEI: [item("u-1")]}))

    assert report.found == [(row, "u-1")]
    assert report.missing == [] and report.unreachable == []


async def test_a_command_not_in_the_history_is_missing() -> None:
    row = make_row()
    report = await settle([row], history_of({IMEI: []}))

    assert report.missing == [row]
    assert report.found == [] and report.unreachable == []


async def test_an_unreachable_history_leaves_the_command_unreachable() -> None:
    row = make_row()
    report = await settle([row], history_of({IMEI: [item("u-1")]}, down={IMEI}))

    assert report.unreachable == [row]
    assert report.found == [] and report.missing == []


async def test_an_unreachable_detail_leaves_the_command_unreachable() -> None:
    row = make_row()
    report = await settle([row], history_of({IMEI: [item("u-1")]}, detail_down=True))

    assert report.unreachable == [row]
    assert report.found == [] and report.missing == []


async def test_one_unreachable_device_does_not_hold_up_the_others() -> None:
    here, there = make_row(1), make_row(2, imei=OTHER, key="key-other")
    history = history_of({IMEI: [item("u-1")], OTHER: [item("u-2", imei=OTHER)]}, down={OTHER})
    report = await settle([here, there], history)

    assert report.found == [(here, "u-1")]
    assert report.unreachable == [there]


async def test_the_history_is_searched_from_a_lookback_before_the_first_attempt() -> None:
    row = make_row(first_attempt_at=FIRST_ATTEMPT, last_attempt_at=FIRST_ATTEMPT + 40)
    history = history_of({IMEI: []})
    await settle([row], history, lookback_s=120)

    assert history.starts[IMEI] == datetime.fromtimestamp(FIRST_ATTEMPT - 120, BEIJING)


async def test_each_history_page_and_detail_takes_a_pace_slot() -> None:
    row = make_row()
    writes = [item(f"u-w{n}", type="WRITE") for n in range(196)]  # listed, never looked at
    listing = [
        item("u-1"),
        item("u-2", trigger_msg=7),
        *writes[:98],
        item("u-3", type="WRITE"),
        item("u-4", args="reboot"),
        *writes[98:],
        item("u-5"),
    ]
    history = history_of({IMEI: listing})  # 100 a page: u-1, u-2 | u-3, u-4 | u-5
    pace = Pace(None)
    await settle([row], history, pace=pace)

    assert len(history.pages) == 3
    assert sorted(history.details) == ["u-1", "u-4", "u-5"]
    assert pace.started == len(history.pages) + len(history.details)


async def test_each_detail_is_fetched_once_for_several_rows() -> None:
    reboot, upgrade = make_row(1, args="reboot"), make_row(2)
    history = history_of({IMEI: [item("u-fw"), item("u-rb", args="reboot")]})
    pace = Pace(None)
    await settle([reboot, upgrade], history, pace=pace)

    assert sorted(history.details) == ["u-fw", "u-rb"]
    assert pace.started == 1 + 2


async def test_a_search_by_onenets_clock_finds_what_our_clock_would_miss() -> None:
    behind = -360.0  # OneNET's clock is 6 minutes behind ours
    row = make_row()
    created = datetime.fromtimestamp(FIRST_ATTEMPT + behind + 1, BEIJING)
    listing = {IMEI: [item("u-1", create_time=created)]}

    by_ours = await settle([row], history_of(listing), lookback_s=300)
    by_onenets = await settle([row], history_of(listing), lookback_s=300, clock_offset_s=behind)

    assert by_ours.missing == [row]
    assert found_uuids(by_onenets) == {row.key: "u-1"}


async def test_the_search_starts_at_onenets_recorded_time_of_the_first_attempt() -> None:
    server_first = FIRST_ATTEMPT - 1000
    row = make_row(first_server_at=server_first, last_server_at=server_first + 40)
    history = history_of({IMEI: []})
    await settle([row], history, lookback_s=120, clock_offset_s=500)

    assert history.starts[IMEI] == datetime.fromtimestamp(server_first - 120, BEIJING)


async def test_the_search_starts_from_the_earliest_row_of_the_device() -> None:
    early = make_row(1, first_server_at=FIRST_ATTEMPT - 50)
    late = make_row(2, first_attempt_at=FIRST_ATTEMPT - 20, args="reboot")
    unsent_first = make_row(3, first_attempt_at=None, last_attempt_at=FIRST_ATTEMPT - 90, args="x")
    history = history_of({IMEI: []})
    await settle([early, late, unsent_first], history, lookback_s=10, clock_offset_s=-5)

    assert history.starts[IMEI] == datetime.fromtimestamp(FIRST_ATTEMPT - 95 - 10, BEIJING)


async def test_a_graceful_stop_finishes_the_look_up_under_way_and_starts_no_other() -> None:
    busy, waiting = make_row(1), make_row(2, imei=OTHER)
    hang = Hold({"history"}, {IMEI})
    history = history_of({IMEI: [item("u-1")], OTHER: [item("u-2", imei=OTHER)]}, on_call=hang)
    stop = Stop()
    async with asyncio.timeout(1):
        task = asyncio.ensure_future(settle([busy, waiting], history, stop=stop, concurrency=1))
        await hang.held.wait()
        stop.request("interrupted")
        hang.release.set()
        report = await task

    assert found_uuids(report) == {busy.key: "u-1"}
    assert report.not_looked_up == [waiting]
    assert OTHER not in history.pages


async def test_a_graceful_stop_asked_for_before_reconciling_does_not_prevent_it() -> None:
    # the runner reconciles after a graceful stop so that it leaves nothing in doubt
    row = make_row()
    stop = Stop()
    stop.request("interrupted")
    report = await settle([row], history_of({IMEI: [item("u-1")]}), stop=stop)

    assert found_uuids(report) == {row.key: "u-1"}
    assert report.not_looked_up == []


async def test_an_immediate_stop_asked_for_before_reconciling_looks_nothing_up() -> None:
    row = make_row()
    history = history_of({IMEI: [item("u-1")]})
    stop = Stop()
    stop.request("interrupted twice", immediate=True)
    report = await settle([row], history, stop=stop)

    assert report.not_looked_up == [row]
    assert history.pages == [] and report.found == []


async def test_an_immediate_stop_cancels_the_look_ups_and_leaves_their_rows_in_doubt() -> None:
    hung, queued = make_row(1), make_row(2, imei=OTHER)
    hang = Hold({"history"})  # the release never comes
    history = history_of(on_call=hang)
    stop = Stop()
    async with asyncio.timeout(1):  # a guard against hanging, not a timing assertion
        task = asyncio.ensure_future(settle([hung, queued], history, stop=stop, concurrency=1))
        await hang.held.wait()
        stop.request("interrupted twice", immediate=True)
        report = await task

    assert {r.key for r in report.not_looked_up} == {hung.key, queued.key}
    assert report.found == [] and report.missing == [] and report.unreachable == []
    assert len(history.pages) == 1


async def test_only_the_first_unreachable_devices_are_logged_then_a_summary(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rows = [make_row(n, imei=f"86123456789{n:04d}") for n in range(7)]
    history = history_of(down={r.command.imei for r in rows})
    with caplog.at_level(logging.DEBUG, logger="dispatcher.run.reconcile"):
        report = await settle(rows, history)

    assert len(report.unreachable) == 7
    lines = [
        (r.levelno, r.getMessage()) for r in caplog.records if r.name == "dispatcher.run.reconcile"
    ]
    per_device = [(lvl, m) for lvl, m in lines if m.startswith("history of ")]
    assert [lvl for lvl, _ in per_device] == [logging.WARNING] * 3 + [logging.DEBUG] * 4
    warnings = [m for lvl, m in lines if lvl >= logging.WARNING]
    assert len(warnings) == 4
    assert warnings[-1].startswith("history unreachable for 4 more devices; last error: history:")


async def test_a_few_unreachable_devices_log_no_summary(caplog: pytest.LogCaptureFixture) -> None:
    rows = [make_row(n, imei=f"86123456789{n:04d}") for n in range(3)]
    with caplog.at_level(logging.DEBUG, logger="dispatcher.run.reconcile"):
        await settle(rows, history_of(down={r.command.imei for r in rows}))

    messages = [r.getMessage() for r in caplog.records if r.name == "dispatcher.run.reconcile"]
    assert len(messages) == 3
    assert not any("more devices" in m for m in messages)

"""Settling in-doubt commands against a hand-written history: found, missing, unreachable,
ambiguous, paced, searched by OneNET's clock, stopped."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timedelta

import pytest

from dispatcher.errors import OneNetUnavailable
from dispatcher.ledger.store import Row, Status
from dispatcher.model import Command, Op
from dispatcher.onenet.client import ExecuteRequest, HistoryItem, Outcome
from dispatcher.run.pacing import Pace
from dispatcher.run.reconcile import ReconcileReport, reconcile
from dispatcher.run.state import Stop
from dispatcher.times import BEIJING, parse_onenet, parse_timespec

IMEI = "861234567890123"
OTHER = "869876543210987"
FIRST_ATTEMPT = datetime(2024, 5, 1, 12, 0, 0, tzinfo=BEIJING).timestamp()
VALID = "2024-05-01T12:30:00"
EXPIRED = "2024-05-03T12:00:00"

ROW_DEFAULTS: dict[str, object] = {
    "imei": IMEI,
    "obj_id": 3203,
    "obj_inst_id": 0,
    "res_id": 5750,
    "args": "fw=2.4.1",
    "valid_time": "+30m",
    "expired_time": "+2d",
    "retry": 3,
    "timeout": 25,
    "trigger_msg": 3,
    "source": "fleet.yaml",
    "status": Status.IN_DOUBT,
    "error": "answer lost",
    "attempts": 1,
    "first_attempt_at": FIRST_ATTEMPT,
    "last_attempt_at": FIRST_ATTEMPT,
    "sent_valid_time": VALID,
    "sent_expired_time": EXPIRED,
    "reconciled": False,
    "op": Op.EXECUTE,
    "step": 0,
}


def make_row(seq: int = 1, **changes: object) -> Row:
    """An in-doubt row; ``changes`` name fields of the row or of its command; the row's fields
    not given here (or added to Row later) are None."""
    names = {f.name for f in fields(Row)} - {"command"}
    command_names = {f.name for f in fields(Command)}
    unknown = set(changes) - names - command_names
    assert not unknown, f"neither Row nor Command has a field {unknown}"
    values = {"seq": seq, "key": f"key-{seq}", "line": seq, **ROW_DEFAULTS, **changes}
    given = {name: values[name] for name in command_names if name in values}
    for name in ("valid_time", "expired_time"):
        if isinstance(given.get(name), str):
            given[name] = parse_timespec(given[name])  # type: ignore[arg-type]
    command = Command(**given)  # type: ignore[arg-type]
    return Row(command=command, **{name: values.get(name) for name in names})  # type: ignore[arg-type]


def item(uuid: str, **changes: object) -> tuple[HistoryItem, str | None]:
    """A history item that matches make_row(), and the args its detail shows."""
    args = changes.pop("args", "fw=2.4.1")
    found = HistoryItem(
        uuid=uuid,
        type="EXECUTE",
        imei=IMEI,
        create_time=datetime.fromtimestamp(FIRST_ATTEMPT + 1, BEIJING),
        valid_time=parse_onenet(VALID),
        expired_time=parse_onenet(EXPIRED),
        send_status=1,
        trigger_msg=3,
    )
    return replace(found, **changes), args  # type: ignore[arg-type]


@dataclass
class FakeHistory:
    """OneNET's history calls over a fixed list, ``per_page`` items a page, filtered by start as
    OneNET does (unless ``ignores_start``); imeis in ``down`` cannot be read, and those in
    ``hang`` never answer."""

    items: dict[str, list[tuple[HistoryItem, str | None]]] = field(default_factory=dict)
    down: set[str] = field(default_factory=set)
    detail_down: bool = False
    per_page: int = 100
    ignores_start: bool = False
    hang: set[str] = field(default_factory=set)
    starts: dict[str, datetime] = field(default_factory=dict)
    pages: list[str] = field(default_factory=list)
    details: list[str] = field(default_factory=list)
    entered: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def execute_offline(self, req: ExecuteRequest) -> Outcome:
        raise AssertionError("reconciling never sends a command")

    async def history(
        self,
        imei: str,
        start: datetime,
        end: datetime | None = None,
        *,
        before_page: Callable[[], Awaitable[None]] | None = None,
        on_date: Callable[[float], None] | None = None,
    ) -> list[HistoryItem]:
        self.starts[imei] = start
        listed = [
            i
            for i, _ in self.items.get(imei, [])
            if self.ignores_start or i.create_time is None or i.create_time >= start
        ]
        found: list[HistoryItem] = []
        for first in range(0, max(len(listed), 1), self.per_page):
            if before_page is not None:
                await before_page()
            self.pages.append(imei)
            if imei in self.hang:
                self.entered.set()
                await self.release.wait()
            if imei in self.down:
                raise OneNetUnavailable(f"history of {imei}: HTTP 502")
            found.extend(listed[first : first + self.per_page])
        return found

    async def detail(
        self, imei: str, uuid: str, *, on_date: Callable[[float], None] | None = None
    ) -> dict[str, object]:
        self.details.append(uuid)
        if self.detail_down:
            raise OneNetUnavailable(f"detail of {uuid}: HTTP 502")
        for i, args in self.items.get(imei, []):
            if i.uuid == uuid:
                return {"args": args, "type": i.type}
        raise OneNetUnavailable(f"detail of {uuid}: errno 5006")


async def settle(
    rows: list[Row],
    history: FakeHistory,
    known: dict[str, set[str]] | None = None,
    lookback_s: float = 300.0,
    *,
    pace: Pace | None = None,
    clock_offset_s: float = 0.0,
    stop: Stop | None = None,
    concurrency: int = 8,
) -> ReconcileReport:
    async def known_uuids(imei: str) -> set[str]:
        return set((known or {}).get(imei, set()))

    return await reconcile(
        rows,
        history,
        known_uuids=known_uuids,
        lookback_s=lookback_s,
        pace=pace or Pace(None),
        concurrency=concurrency,
        clock_offset_s=clock_offset_s,
        stop=stop,
    )


def found_uuids(report: ReconcileReport) -> dict[str, str]:
    return {row.key: uuid for row, uuid in report.found}


def ambiguous_keys(report: ReconcileReport) -> set[str]:
    return {row.key for row, _ in report.ambiguous}


async def test_a_command_in_the_history_is_found_with_its_uuid() -> None:
    row = make_row()
    report = await settle([row], FakeHistory({IMEI: [item("u-1")]}))

    assert report.found == [(row, "u-1")]
    assert report.missing == [] and report.unreachable == []


async def test_a_command_not_in_the_history_is_missing() -> None:
    row = make_row()
    report = await settle([row], FakeHistory({IMEI: []}))

    assert report.missing == [row]
    assert report.found == [] and report.unreachable == []


async def test_an_unreachable_history_leaves_the_command_unreachable() -> None:
    row = make_row()
    report = await settle([row], FakeHistory({IMEI: [item("u-1")]}, down={IMEI}))

    assert report.unreachable == [row]
    assert report.found == [] and report.missing == []


async def test_an_unreachable_detail_leaves_the_command_unreachable() -> None:
    row = make_row()
    report = await settle([row], FakeHistory({IMEI: [item("u-1")]}, detail_down=True))

    assert report.unreachable == [row]
    assert report.found == [] and report.missing == []


async def test_one_unreachable_device_does_not_hold_up_the_others() -> None:
    here, there = make_row(1), make_row(2, imei=OTHER, key="key-other")
    history = FakeHistory({IMEI: [item("u-1")], OTHER: [item("u-2", imei=OTHER)]}, down={OTHER})
    report = await settle([here, there], history)

    assert report.found == [(here, "u-1")]
    assert report.unreachable == [there]


async def test_the_history_is_searched_from_a_lookback_before_the_first_attempt() -> None:
    row = make_row(first_attempt_at=FIRST_ATTEMPT, last_attempt_at=FIRST_ATTEMPT + 40)
    history = FakeHistory({IMEI: []})
    await settle([row], history, lookback_s=120)

    assert history.starts[IMEI] == datetime.fromtimestamp(FIRST_ATTEMPT - 120, BEIJING)


@pytest.mark.parametrize(
    "differs",
    [
        {"type": "WRITE"},
        {"type": "READ"},
        {"trigger_msg": 7},
        {"expired_time": parse_onenet(EXPIRED) + timedelta(seconds=1)},
        {"valid_time": parse_onenet(VALID) - timedelta(seconds=1)},
        {"args": "fw=2.4.0"},
        {"args": None},
    ],
    ids=["write", "read", "trigger", "expired", "valid", "args", "no-args"],
)
async def test_a_history_item_that_differs_in_one_respect_is_not_a_match(
    differs: dict[str, object],
) -> None:
    row = make_row()
    report = await settle([row], FakeHistory({IMEI: [item("u-1", **differs)]}))

    assert report.found == []
    assert report.missing == [row]


async def test_the_type_is_matched_whatever_its_case() -> None:
    row = make_row()
    report = await settle([row], FakeHistory({IMEI: [item("u-1", type="execute")]}))

    assert found_uuids(report) == {row.key: "u-1"}


async def test_without_a_sent_valid_time_the_servers_valid_time_is_not_compared() -> None:
    row = make_row(valid_time=None, sent_valid_time=None)
    server_now = datetime.fromtimestamp(FIRST_ATTEMPT + 1, BEIJING)
    report = await settle([row], FakeHistory({IMEI: [item("u-1", valid_time=server_now)]}))

    assert found_uuids(report) == {row.key: "u-1"}


async def test_a_command_without_args_matches_a_history_item_without_args() -> None:
    row = make_row(args=None)
    report = await settle([row], FakeHistory({IMEI: [item("u-1", args=None)]}))

    assert found_uuids(report) == {row.key: "u-1"}


async def test_uuids_the_ledger_already_holds_are_ignored() -> None:
    row = make_row()
    history = FakeHistory({IMEI: [item("u-held")]})
    report = await settle([row], history, known={IMEI: {"u-held"}})

    assert report.missing == [row]
    assert "u-held" not in history.details  # not even looked at


async def test_a_held_uuid_is_skipped_for_the_next_matching_one() -> None:
    row = make_row()
    history = FakeHistory({IMEI: [item("u-held"), item("u-new")]})
    report = await settle([row], history, known={IMEI: {"u-held"}})

    assert found_uuids(report) == {row.key: "u-new"}


async def test_two_alike_rows_and_one_matching_command_both_stay_in_doubt() -> None:
    first, second = make_row(1, res_id=5750), make_row(2, res_id=5751)  # ids the history hides
    report = await settle([first, second], FakeHistory({IMEI: [item("u-1")]}))

    assert report.found == [] and report.missing == []
    assert ambiguous_keys(report) == {first.key, second.key}
    for _, reason in report.ambiguous:
        assert reason == (
            "2 commands to this device that the history cannot tell apart"
            " (same type, trigger, window and args); 1 matching command found"
        )


async def test_two_alike_rows_and_two_matching_commands_both_stay_in_doubt() -> None:
    first, second = make_row(1), make_row(2)
    later = datetime.fromtimestamp(FIRST_ATTEMPT + 2, BEIJING)
    history = FakeHistory({IMEI: [item("u-2", create_time=later), item("u-1")]})
    report = await settle([first, second], history)

    assert report.found == [] and report.missing == []
    assert ambiguous_keys(report) == {first.key, second.key}
    assert all(reason.endswith("; 2 matching commands found") for _, reason in report.ambiguous)


async def test_two_alike_rows_without_a_matching_command_are_both_missing() -> None:
    first, second = make_row(1), make_row(2)
    report = await settle([first, second], FakeHistory({IMEI: [item("u-1", args="reboot")]}))

    assert {r.key for r in report.missing} == {first.key, second.key}
    assert report.found == [] and report.ambiguous == []


async def test_rows_sharing_a_candidate_through_an_unsent_valid_time_stay_in_doubt() -> None:
    sent, unsent = make_row(1), make_row(2, valid_time=None, sent_valid_time=None)
    server_now = datetime.fromtimestamp(FIRST_ATTEMPT + 1, BEIJING)
    history = FakeHistory({IMEI: [item("u-1"), item("u-2", valid_time=server_now)]})
    report = await settle([sent, unsent], history)

    # u-1 could be either row's, so neither is settled by it nor by u-2
    assert report.found == [] and report.missing == []
    assert ambiguous_keys(report) == {sent.key, unsent.key}


async def test_alike_rows_stay_in_doubt_while_a_distinct_row_of_the_device_settles() -> None:
    first, second = make_row(1), make_row(2)
    reboot = make_row(3, args="reboot")
    history = FakeHistory({IMEI: [item("u-1"), item("u-rb", args="reboot")]})
    report = await settle([first, second, reboot], history)

    assert found_uuids(report) == {reboot.key: "u-rb"}
    assert ambiguous_keys(report) == {first.key, second.key}


async def test_rows_of_one_device_with_different_windows_find_their_own_commands() -> None:
    later = "2024-05-04T12:00:00"
    short, long = make_row(1), make_row(2, sent_expired_time=later)
    history = FakeHistory(
        {IMEI: [item("u-long", expired_time=parse_onenet(later)), item("u-short")]}
    )
    report = await settle([short, long], history)

    assert found_uuids(report) == {short.key: "u-short", long.key: "u-long"}
    assert report.ambiguous == []


async def test_several_matching_commands_for_one_row_settle_on_the_earliest_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    row = make_row()
    later = datetime.fromtimestamp(FIRST_ATTEMPT + 5, BEIJING)
    history = FakeHistory({IMEI: [item("u-late", create_time=later), item("u-early")]})
    with caplog.at_level(logging.WARNING):
        report = await settle([row], history)

    assert found_uuids(report) == {row.key: "u-early"}
    assert any("more than one matching command" in r.getMessage() for r in caplog.records)


async def test_a_command_created_before_the_search_start_is_not_a_candidate() -> None:
    row = make_row()
    early = datetime.fromtimestamp(FIRST_ATTEMPT - 301, BEIJING)
    history = FakeHistory({IMEI: [item("u-old", create_time=early)]}, ignores_start=True)
    report = await settle([row], history, lookback_s=300)

    assert report.missing == [row]
    assert history.details == []


async def test_rows_of_one_device_with_different_args_find_their_own_commands() -> None:
    reboot, upgrade = make_row(1, args="reboot"), make_row(2, args="fw=2.4.1")
    history = FakeHistory({IMEI: [item("u-fw", args="fw=2.4.1"), item("u-rb", args="reboot")]})
    report = await settle([reboot, upgrade], history)

    assert found_uuids(report) == {reboot.key: "u-rb", upgrade.key: "u-fw"}


async def test_rows_of_many_devices_are_each_settled() -> None:
    rows = [make_row(n, imei=f"86123456789{n:04d}", key=f"k{n}") for n in range(30)]
    history = FakeHistory(
        {r.command.imei: [item(f"u-{r.seq}", imei=r.command.imei)] for r in rows if r.seq % 3},
        down={r.command.imei for r in rows if r.seq % 3 == 0 and r.seq % 2 == 0},
    )
    report = await settle(rows, history)

    assert found_uuids(report) == {r.key: f"u-{r.seq}" for r in rows if r.seq % 3}
    assert {r.key for r in report.unreachable} == {
        r.key for r in rows if r.seq % 3 == 0 and r.seq % 2 == 0
    }
    assert {r.key for r in report.missing} == {
        r.key for r in rows if r.seq % 3 == 0 and r.seq % 2 == 1
    }


async def test_each_history_page_and_detail_takes_a_pace_slot() -> None:
    row = make_row()
    listing = [
        item("u-1"),
        item("u-2", trigger_msg=7),
        item("u-3", type="WRITE"),
        item("u-4", args="reboot"),
        item("u-5"),
    ]
    history = FakeHistory({IMEI: listing}, per_page=2)
    pace = Pace(None)
    await settle([row], history, pace=pace)

    assert len(history.pages) == 3
    assert sorted(history.details) == ["u-1", "u-4", "u-5"]
    assert pace.started == len(history.pages) + len(history.details)


async def test_each_detail_is_fetched_once_for_several_rows() -> None:
    reboot, upgrade = make_row(1, args="reboot"), make_row(2)
    history = FakeHistory({IMEI: [item("u-fw"), item("u-rb", args="reboot")]})
    pace = Pace(None)
    await settle([reboot, upgrade], history, pace=pace)

    assert sorted(history.details) == ["u-fw", "u-rb"]
    assert pace.started == 1 + 2


async def test_a_search_by_onenets_clock_finds_what_our_clock_would_miss() -> None:
    behind = -360.0  # OneNET's clock is 6 minutes behind ours
    row = make_row()
    created = datetime.fromtimestamp(FIRST_ATTEMPT + behind + 1, BEIJING)
    listing = {IMEI: [item("u-1", create_time=created)]}

    by_ours = await settle([row], FakeHistory(listing), lookback_s=300)
    by_onenets = await settle([row], FakeHistory(listing), lookback_s=300, clock_offset_s=behind)

    assert by_ours.missing == [row]
    assert found_uuids(by_onenets) == {row.key: "u-1"}


async def test_the_search_starts_at_onenets_recorded_time_of_the_first_attempt() -> None:
    server_first = FIRST_ATTEMPT - 1000
    row = make_row(first_server_at=server_first, last_server_at=server_first + 40)
    history = FakeHistory({IMEI: []})
    await settle([row], history, lookback_s=120, clock_offset_s=500)

    assert history.starts[IMEI] == datetime.fromtimestamp(server_first - 120, BEIJING)


async def test_the_search_starts_from_the_earliest_row_of_the_device() -> None:
    early = make_row(1, first_server_at=FIRST_ATTEMPT - 50)
    late = make_row(2, first_attempt_at=FIRST_ATTEMPT - 20, args="reboot")
    unsent_first = make_row(3, first_attempt_at=None, last_attempt_at=FIRST_ATTEMPT - 90, args="x")
    history = FakeHistory({IMEI: []})
    await settle([early, late, unsent_first], history, lookback_s=10, clock_offset_s=-5)

    assert history.starts[IMEI] == datetime.fromtimestamp(FIRST_ATTEMPT - 95 - 10, BEIJING)


async def test_a_graceful_stop_finishes_the_look_up_under_way_and_starts_no_other() -> None:
    busy, waiting = make_row(1), make_row(2, imei=OTHER)
    history = FakeHistory({IMEI: [item("u-1")], OTHER: [item("u-2", imei=OTHER)]}, hang={IMEI})
    stop = Stop()
    async with asyncio.timeout(1):
        task = asyncio.ensure_future(settle([busy, waiting], history, stop=stop, concurrency=1))
        await history.entered.wait()
        stop.request("interrupted")
        history.release.set()
        report = await task

    assert found_uuids(report) == {busy.key: "u-1"}
    assert report.not_looked_up == [waiting]
    assert OTHER not in history.pages


async def test_a_graceful_stop_asked_for_before_reconciling_does_not_prevent_it() -> None:
    # the runner reconciles after a graceful stop so that it leaves nothing in doubt
    row = make_row()
    stop = Stop()
    stop.request("interrupted")
    report = await settle([row], FakeHistory({IMEI: [item("u-1")]}), stop=stop)

    assert found_uuids(report) == {row.key: "u-1"}
    assert report.not_looked_up == []


async def test_an_immediate_stop_asked_for_before_reconciling_looks_nothing_up() -> None:
    row = make_row()
    history = FakeHistory({IMEI: [item("u-1")]})
    stop = Stop()
    stop.request("interrupted twice", immediate=True)
    report = await settle([row], history, stop=stop)

    assert report.not_looked_up == [row]
    assert history.pages == [] and report.found == []


async def test_an_immediate_stop_cancels_the_look_ups_and_leaves_their_rows_in_doubt() -> None:
    hung, queued = make_row(1), make_row(2, imei=OTHER)
    history = FakeHistory(hang={IMEI, OTHER})  # the release never comes
    stop = Stop()
    async with asyncio.timeout(1):  # a guard against hanging, not a timing assertion
        task = asyncio.ensure_future(settle([hung, queued], history, stop=stop, concurrency=1))
        await history.entered.wait()
        stop.request("interrupted twice", immediate=True)
        report = await task

    assert {r.key for r in report.not_looked_up} == {hung.key, queued.key}
    assert report.found == [] and report.missing == [] and report.unreachable == []
    assert len(history.pages) == 1


async def test_only_the_first_unreachable_devices_are_logged_then_a_summary(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rows = [make_row(n, imei=f"86123456789{n:04d}") for n in range(7)]
    history = FakeHistory(down={r.command.imei for r in rows})
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
    assert warnings[-1].startswith("history unreachable for 4 more devices; last error: history of")


async def test_a_few_unreachable_devices_log_no_summary(caplog: pytest.LogCaptureFixture) -> None:
    rows = [make_row(n, imei=f"86123456789{n:04d}") for n in range(3)]
    with caplog.at_level(logging.DEBUG, logger="dispatcher.run.reconcile"):
        await settle(rows, FakeHistory(down={r.command.imei for r in rows}))

    messages = [r.getMessage() for r in caplog.records if r.name == "dispatcher.run.reconcile"]
    assert len(messages) == 3
    assert not any("more devices" in m for m in messages)

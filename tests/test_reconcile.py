"""Settling in-doubt commands against a hand-written history: found, missing, unreachable."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

import pytest

from dispatcher.client import ExecuteRequest, HistoryItem, Outcome
from dispatcher.errors import OneNetUnavailable
from dispatcher.ledger import Row, Status
from dispatcher.pacing import Pace
from dispatcher.reconcile import ReconcileReport, reconcile
from dispatcher.times import BEIJING, parse_onenet

IMEI = "861234567890123"
OTHER = "869876543210987"
FIRST_ATTEMPT = datetime(2024, 5, 1, 12, 0, 0, tzinfo=BEIJING).timestamp()
VALID = "2024-05-01T12:30:00"
EXPIRED = "2024-05-03T12:00:00"


def make_row(seq: int = 1, **changes: object) -> Row:
    row = Row(
        seq=seq,
        key=f"key-{seq}",
        imei=IMEI,
        obj_id=3203,
        obj_inst_id=0,
        res_id=5750,
        args="fw=2.4.1",
        valid_time="+30m",
        expired_time="+2d",
        retry=3,
        timeout=25,
        trigger_msg=3,
        source="fleet.yaml",
        line=seq,
        status=Status.IN_DOUBT,
        errno=None,
        error="answer lost",
        uuid=None,
        attempts=1,
        first_attempt_at=FIRST_ATTEMPT,
        last_attempt_at=FIRST_ATTEMPT,
        latency_ms=None,
        sent_valid_time=VALID,
        sent_expired_time=EXPIRED,
        reconciled=False,
    )
    return replace(row, **changes)  # type: ignore[arg-type]


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
    """OneNET's history calls over a fixed list; imeis in ``down`` cannot be read."""

    items: dict[str, list[tuple[HistoryItem, str | None]]] = field(default_factory=dict)
    down: set[str] = field(default_factory=set)
    detail_down: bool = False
    starts: dict[str, datetime] = field(default_factory=dict)
    details: list[str] = field(default_factory=list)

    async def execute_offline(self, req: ExecuteRequest) -> Outcome:
        raise AssertionError("reconciling never sends a command")

    async def history(
        self, imei: str, start: datetime, end: datetime | None = None
    ) -> list[HistoryItem]:
        self.starts[imei] = start
        if imei in self.down:
            raise OneNetUnavailable(f"history of {imei}: HTTP 502")
        return [i for i, _ in self.items.get(imei, [])]

    async def detail(self, imei: str, uuid: str) -> dict[str, object]:
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
) -> ReconcileReport:
    async def known_uuids(imei: str) -> set[str]:
        return set((known or {}).get(imei, set()))

    return await reconcile(
        rows, history, known_uuids=known_uuids, lookback_s=lookback_s, pace=Pace(None)
    )


def found_uuids(report: ReconcileReport) -> dict[str, str]:
    return {row.key: uuid for row, uuid in report.found}


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


async def test_two_rows_of_one_device_are_not_both_matched_to_one_uuid() -> None:
    first, second = make_row(1), make_row(2)
    report = await settle([first, second], FakeHistory({IMEI: [item("u-1")]}))

    assert len(report.found) == 1
    assert report.found[0][1] == "u-1"
    assert len(report.missing) == 1
    assert {report.found[0][0].key, report.missing[0].key} == {first.key, second.key}


async def test_two_rows_of_one_device_get_one_uuid_each() -> None:
    first, second = make_row(1), make_row(2)
    later = datetime.fromtimestamp(FIRST_ATTEMPT + 2, BEIJING)
    history = FakeHistory({IMEI: [item("u-2", create_time=later), item("u-1")]})
    report = await settle([first, second], history)

    # the earliest created goes to the first row
    assert found_uuids(report) == {first.key: "u-1", second.key: "u-2"}
    assert report.missing == []


async def test_rows_of_one_device_with_different_args_find_their_own_commands() -> None:
    reboot, upgrade = make_row(1, args="reboot"), make_row(2, args="fw=2.4.1")
    history = FakeHistory({IMEI: [item("u-fw", args="fw=2.4.1"), item("u-rb", args="reboot")]})
    report = await settle([reboot, upgrade], history)

    assert found_uuids(report) == {reboot.key: "u-rb", upgrade.key: "u-fw"}


async def test_rows_of_many_devices_are_each_settled() -> None:
    rows = [make_row(n, imei=f"86123456789{n:04d}", key=f"k{n}") for n in range(30)]
    history = FakeHistory(
        {r.imei: [item(f"u-{r.seq}", imei=r.imei)] for r in rows if r.seq % 3},
        down={r.imei for r in rows if r.seq % 3 == 0 and r.seq % 2 == 0},
    )
    report = await settle(rows, history)

    assert found_uuids(report) == {r.key: f"u-{r.seq}" for r in rows if r.seq % 3}
    assert {r.key for r in report.unreachable} == {
        r.key for r in rows if r.seq % 3 == 0 and r.seq % 2 == 0
    }
    assert {r.key for r in report.missing} == {
        r.key for r in rows if r.seq % 3 == 0 and r.seq % 2 == 1
    }

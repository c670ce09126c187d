"""Settling in-doubt commands: which history items match a row (type, trigger, window, args),
uuids the ledger holds, rows that the history cannot tell apart (ambiguous), many devices."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import pytest

from dispatcher.times import BEIJING, parse_onenet
from tests.support.settling import (
    EXPIRED,
    FIRST_ATTEMPT,
    IMEI,
    VALID,
    ambiguous_keys,
    found_uuids,
    history_of,
    item,
    make_row,
    settle,
)


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
    report = await settle([row], history_of({IMEI: [item("u-1", **differs)]}))

    assert report.found == []
    assert report.missing == [row]


async def test_the_type_is_matched_whatever_its_case() -> None:
    row = make_row()
    report = await settle([row], history_of({IMEI: [item("u-1", type="execute")]}))

    assert found_uuids(report) == {row.key: "u-1"}


async def test_without_a_sent_valid_time_the_servers_valid_time_is_not_compared() -> None:
    row = make_row(valid_time=None, sent_valid_time=None)
    server_now = datetime.fromtimestamp(FIRST_ATTEMPT + 1, BEIJING)
    report = await settle([row], history_of({IMEI: [item("u-1", valid_time=server_now)]}))

    assert found_uuids(report) == {row.key: "u-1"}


async def test_a_command_without_args_matches_a_history_item_without_args() -> None:
    row = make_row(args=None)
    report = await settle([row], history_of({IMEI: [item("u-1", args=None)]}))

    assert found_uuids(report) == {row.key: "u-1"}


async def test_uuids_the_ledger_already_holds_are_ignored() -> None:
    row = make_row()
    history = history_of({IMEI: [item("u-held")]})
    report = await settle([row], history, known={IMEI: {"u-held"}})

    assert report.missing == [row]
    assert "u-held" not in history.details  # not even looked at


async def test_a_held_uuid_is_skipped_for_the_next_matching_one() -> None:
    row = make_row()
    history = history_of({IMEI: [item("u-held"), item("u-new")]})
    report = await settle([row], history, known={IMEI: {"u-held"}})

    assert found_uuids(report) == {row.key: "u-new"}


async def test_two_alike_rows_and_one_matching_command_both_stay_in_doubt() -> None:
    first, second = make_row(1, res_id=5750), make_row(2, res_id=5751)  # ids the history hides
    report = await settle([first, second], history_of({IMEI: [item("u-1")]}))

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
    history = history_of({IMEI: [item("u-2", create_time=later), item("u-1")]})
    report = await settle([first, second], history)

    assert report.found == [] and report.missing == []
    assert ambiguous_keys(report) == {first.key, second.key}
    assert all(reason.endswith("; 2 matching commands found") for _, reason in report.ambiguous)


async def test_two_alike_rows_without_a_matching_command_are_both_missing() -> None:
    first, second = make_row(1), make_row(2)
    report = await settle([first, second], history_of({IMEI: [item("u-1", args="reboot")]}))

    assert {r.key for r in report.missing} == {first.key, second.key}
    assert report.found == [] and report.ambiguous == []


async def test_rows_sharing_a_candidate_through_an_unsent_valid_time_stay_in_doubt() -> None:
    sent, unsent = make_row(1), make_row(2, valid_time=None, sent_valid_time=None)
    server_now = datetime.fromtimestamp(FIRST_ATTEMPT + 1, BEIJING)
    history = history_of({IMEI: [item("u-1"), item("u-2", valid_time=server_now)]})
    report = await settle([sent, unsent], history)

    # u-1 could be either row's, so neither is settled by it nor by u-2
    assert report.found == [] and report.missing == []
    assert ambiguous_keys(report) == {sent.key, unsent.key}


async def test_alike_rows_stay_in_doubt_while_a_distinct_row_of_the_device_settles() -> None:
    first, second = make_row(1), make_row(2)
    reboot = make_row(3, args="reboot")
    history = history_of({IMEI: [item("u-1"), item("u-rb", args="reboot")]})
    report = await settle([first, second, reboot], history)

    assert found_uuids(report) == {reboot.key: "u-rb"}
    assert ambiguous_keys(report) == {first.key, second.key}


async def test_rows_of_one_device_with_different_windows_find_their_own_commands() -> None:
    later = "2024-05-04T12:00:00"
    short, long = make_row(1), make_row(2, sent_expired_time=later)
    history = history_of(
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
    history = history_of({IMEI: [item("u-late", create_time=later), item("u-early")]})
    with caplog.at_level(logging.WARNING):
        report = await settle([row], history)

    assert found_uuids(report) == {row.key: "u-early"}
    assert any("more than one matching command" in r.getMessage() for r in caplog.records)


async def test_a_command_created_before_the_search_start_is_not_a_candidate() -> None:
    row = make_row()
    early = datetime.fromtimestamp(FIRST_ATTEMPT - 301, BEIJING)
    history = history_of({IMEI: [item("u-old", create_time=early)]}, ignores_start=True)
    report = await settle([row], history, lookback_s=300)

    assert report.missing == [row]
    assert history.details == []


async def test_rows_of_one_device_with_different_args_find_their_own_commands() -> None:
    reboot, upgrade = make_row(1, args="reboot"), make_row(2, args="fw=2.4.1")
    history = history_of({IMEI: [item("u-fw", args="fw=2.4.1"), item("u-rb", args="reboot")]})
    report = await settle([reboot, upgrade], history)

    assert found_uuids(report) == {reboot.key: "u-rb", upgrade.key: "u-fw"}


async def test_rows_of_many_devices_are_each_settled() -> None:
    rows = [make_row(n, imei=f"86123456789{n:04d}", key=f"k{n}") for n in range(30)]
    history = history_of(
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

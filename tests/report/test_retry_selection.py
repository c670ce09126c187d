"""Which commands of a ledger retry-failed sends again, with their reason: each kind that did not
get through, never those that got through or may yet, never retired rows; passed absolute times
found, relative ones never."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from pathlib import Path

import pytest

from dispatcher.job.model import load_job
from dispatcher.ledger.sqlite import Ledger
from dispatcher.ledger.store import Status
from dispatcher.report.retry import Reason, RetryTally, passed_times, reason_of, retries
from dispatcher.times import parse_timespec
from tests.support.e2e import fleet
from tests.support.retry import AT, FATES, LEFT_OUT, SENT_AGAIN, make_ledger, write_job

# --- building jobs and ledgers ---------------------------------------------------------------


def reasons_by_imei(ledger_path: Path, now: datetime = AT) -> tuple[dict[str, Reason], RetryTally]:
    tally = RetryTally()
    with Ledger.open(ledger_path, read_only=True) as ledger:
        found = {r.row.command.imei: r.reason for r in retries(ledger, tally, now=now)}
    return found, tally


# --- which commands are sent again -----------------------------------------------------------


@pytest.mark.parametrize(("fate", "reason"), SENT_AGAIN.items())
def test_each_kind_of_command_that_did_not_get_through_is_sent_again_with_its_reason(
    tmp_path: Path, fate: str, reason: Reason
) -> None:
    devices = fleet(2)
    ledger = make_ledger(write_job(tmp_path / "job.yaml", devices), [fate, "delivered"])
    found, tally = reasons_by_imei(ledger)
    assert found == {devices[0]: reason}
    assert tally.reasons[reason] == tally.total == 1


@pytest.mark.parametrize("fate", LEFT_OUT)
def test_commands_that_got_through_may_yet_or_may_be_at_onenet_are_left_out(
    tmp_path: Path, fate: str
) -> None:
    devices = fleet(2)
    ledger = make_ledger(write_job(tmp_path / "job.yaml", devices), [fate, "rejected"])
    found, tally = reasons_by_imei(ledger)
    assert found == {devices[1]: Reason.REJECTED}
    assert tally.rows == 2
    status = FATES[fate][0]
    expected = 1 if status in (Status.IN_DOUBT, Status.IN_FLIGHT) else 0
    assert sum(tally.unsettled.values()) == expected


def test_retired_rows_are_never_sent_again(tmp_path: Path) -> None:
    devices = fleet(2)
    job_path = write_job(tmp_path / "job.yaml", devices)
    ledger_path = make_ledger(job_path, ["rejected", "rejected"])
    kept = [c for c in load_job(job_path).commands() if c.imei == devices[1]]
    with Ledger.open(ledger_path) as ledger:
        ledger.compare(kept, apply=True)  # the first device left the job: its row is retired
        (retired,) = ledger.rows(retired=True)
    assert reason_of(retired) is None
    found, _ = reasons_by_imei(ledger_path)
    assert found == {devices[1]: Reason.REJECTED}


@pytest.mark.parametrize(
    ("valid_time", "expired_time", "passed"),
    [
        (None, "+2d", ()),
        ("+1h", "+2d", ()),
        (None, "2030-01-01T11:59:59", ("expired_time",)),
        (None, "2030-01-01T12:00:00", ("expired_time",)),  # at now: OneNET refuses it too
        (None, "2030-01-01T12:00:01", ()),
        ("2030-01-01T03:00:00Z", "+2d", ("valid_time",)),  # 11:00 UTC+8
        ("2030-01-01T03:00:00+08:00", "2030-01-01T04:00:00", ("valid_time", "expired_time")),
        ("2030-01-01T05:00:00Z", "2030-01-02T00:00:00", ()),  # 13:00 UTC+8
    ],
)
def test_absolute_times_that_have_passed_are_found_and_relative_ones_never(
    tmp_path: Path, valid_time: str | None, expired_time: str, passed: tuple[str, ...]
) -> None:
    ledger_path = make_ledger(write_job(tmp_path / "job.yaml", fleet(1)), ["rejected"])
    with Ledger.open(ledger_path, read_only=True) as ledger:
        (row,) = ledger.rows()
    valid = None if valid_time is None else parse_timespec(valid_time)
    cmd = replace(row.command, valid_time=valid, expired_time=parse_timespec(expired_time))
    row = replace(row, command=cmd)
    assert passed_times(row, AT) == passed

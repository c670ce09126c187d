"""The rollout flags over the job file's rollout, and the schedule: section."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from dispatcher.job.plan import (
    Abort,
    Canary,
    Ramp,
    Rollout,
    rollout_from_flags,
)
from dispatcher.times import BEIJING
from tests.support.files import WriteFile
from tests.support.jobs import I1
from tests.support.plans import (
    job_with,
    problems,
)


def test_flags_override_the_file_values_key_by_key() -> None:
    base = Rollout(
        canary=Canary(size=50, wait="delivered", timeout_s=600.0),
        ramp=Ramp(start_per_second=2.0, factor=3.0),
        abort=Abort(max_failure_rate=0.1, on_errnos=frozenset({3})),
    )
    out = rollout_from_flags(
        base,
        canary="2%",
        canary_then="pause",
        ramp_every=10,
        min_decided=5,
        abort_on_errnos=(7, 8),
    )
    assert out == Rollout(
        canary=Canary(percent=2.0, wait="delivered", timeout_s=600.0, then="pause"),
        ramp=Ramp(start_per_second=2.0, factor=3.0, every_accepted=10),
        abort=Abort(max_failure_rate=0.1, min_decided=5, on_errnos=frozenset({7, 8})),
    )


def test_no_flags_keep_the_file_rollout() -> None:
    base = Rollout(canary=Canary(size=3), abort=Abort(on_errnos=frozenset({1})))
    assert rollout_from_flags(base) == base
    assert rollout_from_flags(Rollout()) == Rollout()


def test_flags_alone_make_a_rollout() -> None:
    out = rollout_from_flags(
        Rollout(),
        canary="50",
        canary_wait="delivered",
        canary_timeout="2h",
        ramp_start=5,
        max_failure_rate=0.2,
    )
    assert out == Rollout(
        canary=Canary(size=50, wait="delivered", timeout_s=7200.0),
        ramp=Ramp(start_per_second=5.0),
        abort=Abort(max_failure_rate=0.2),
    )


def test_a_canary_size_flag_replaces_a_share_and_the_other_way() -> None:
    assert rollout_from_flags(Rollout(canary=Canary(percent=5.0)), canary="9").canary == Canary(
        size=9
    )
    assert rollout_from_flags(Rollout(canary=Canary(size=9)), canary="5%").canary == Canary(
        percent=5.0
    )


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ({"canary": "0"}, "--canary: must be a number of commands"),
        ({"canary": "200%"}, "--canary: a share must be"),
        ({"canary": "5", "canary_wait": "soon"}, "--canary-wait: must be accepted or delivered"),
        ({"canary": "5", "canary_then": "x"}, "--canary-then: must be continue or pause"),
        (
            {"canary": "5", "canary_wait": "delivered", "canary_timeout": "40d"},
            "--canary-timeout: must be at most 30 days",
        ),
        ({"canary": "5", "canary_timeout": "1h"}, "--canary-timeout: applies to a canary that"),
        ({"canary_wait": "delivered"}, "--canary-wait needs --canary"),
        ({"canary_then": "pause"}, "--canary-then needs --canary"),
        ({"ramp_factor": 2.0}, "--ramp-factor needs --ramp-start-per-second"),
        ({"ramp_every": 5}, "--ramp-every-accepted needs --ramp-start-per-second"),
        ({"ramp_start": 0.0}, "--ramp-start-per-second: must be more than 0"),
        ({"ramp_start": float("inf")}, "--ramp-start-per-second: must be more than 0"),
        ({"ramp_start": 1.0, "ramp_factor": 0.5}, "--ramp-factor: must be 1 or more"),
        ({"ramp_start": 1.0, "ramp_every": 0}, "--ramp-every-accepted: must be 1 or more"),
        ({"max_failure_rate": 1.5}, "--max-failure-rate: must be from 0 to 1"),
        ({"max_failure_rate": float("nan")}, "--max-failure-rate: must be from 0 to 1"),
        ({"max_failure_rate": 0.1, "min_decided": 0}, "--min-decided: must be 1 or more"),
        ({"min_decided": 10}, "--min-decided needs --max-failure-rate"),
        ({"abort_on_errnos": (3, -2)}, "--abort-on-errno: must be an errno, 0 or more"),
    ],
)
def test_bad_flag_values_are_value_errors_naming_the_flag(
    flags: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError) as caught:
        rollout_from_flags(Rollout(), **flags)  # type: ignore[arg-type]
    assert str(caught.value).startswith(message)


def test_a_timeout_flag_is_fine_when_the_file_waits_for_delivery() -> None:
    base = Rollout(canary=Canary(size=5, wait="delivered"))
    out = rollout_from_flags(base, canary_timeout="90s")
    assert out.canary == Canary(size=5, wait="delivered", timeout_s=90.0)


@pytest.mark.parametrize(
    ("written", "start"),
    [
        ("2030-02-01T02:00:00", datetime(2030, 2, 1, 2, 0, tzinfo=BEIJING)),
        ("'2030-02-01 02:00'", datetime(2030, 2, 1, 2, 0, tzinfo=BEIJING)),
        ("2030-02-01T00:00:00Z", datetime(2030, 2, 1, 8, 0, tzinfo=BEIJING)),
        ("2030-02-01T02:00:00+01:00", datetime(2030, 2, 1, 9, 0, tzinfo=BEIJING)),
    ],
)
def test_start_at_is_an_absolute_time_utc8_unless_zoned(
    write_file: WriteFile, written: str, start: datetime
) -> None:
    job = job_with(write_file, f"schedule:\n  start_at: {written}\n")
    assert job.plan.start_at == start
    assert job.plan.start_at is not None and job.plan.start_at.utcoffset() == timedelta(hours=8)
    assert problems(job) == []


@pytest.mark.parametrize(
    ("sections", "expected"),
    [
        ("schedule:\n  start_at: +30m\n", "3: schedule.start_at: +30m is not a moment"),
        (
            "schedule:\n  start_at: window 02:00-06:00 start\n",
            "3: schedule.start_at: window 02:00-06:00 start is not a moment",
        ),
        ("schedule:\n  start_at: soon\n", "3: schedule.start_at: 'soon' is not a time"),
        ("schedule:\n  start_at:\n", "3: schedule.start_at: is empty (null)"),
        ("schedule:\n  start: 2030-02-01T02:00:00\n", "3: schedule.start: unknown field (did"),
        ("schedule:\n  begin: x\n", "2: schedule.start_at: is required"),
        ("schedule: 2030-02-01T02:00:00\n", "2: schedule: must be a mapping with start_at:"),
    ],
)
def test_schedule_problems_name_their_line_and_key(
    write_file: WriteFile, sections: str, expected: str
) -> None:
    found = problems(job_with(write_file, sections))
    assert any(p.startswith(expected) for p in found), found


def test_a_start_at_already_past_is_a_warning_at_validation(write_file: WriteFile) -> None:
    job = job_with(write_file, "schedule:\n  start_at: 2029-12-31T08:00:00\n")
    assert problems(job) == [
        "warning: 3: schedule.start_at: 2029-12-31T08:00:00 (UTC+8) has passed at the start"
        " checked against (2030-01-01T12:00:00 UTC+8)"
    ]
    assert problems(job, at=datetime(2029, 12, 31, 7, 0, tzinfo=BEIJING)) == []
    assert problems(job, strict=True)[0].startswith("3: schedule.start_at: ")
    assert [c.imei for c in job.commands()] == [I1]  # sending: not a problem

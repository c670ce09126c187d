"""The job file's rollout:, schedule: and window: sections, and the rollout flags."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from dispatcher.job.model import Job, Problem, Validation, load_job, validate_job
from dispatcher.job.plan import (
    Abort,
    Canary,
    Plan,
    Ramp,
    Rollout,
    parse_canary_size,
    parse_duration,
    rollout_from_flags,
)
from dispatcher.times import BEIJING, DailyWindow, parse_timespec
from tests.support.files import WriteFile
from tests.support.jobs import AT, I1, I2, I3

DEFAULTS = "defaults:\n  obj_id: 3\n  obj_inst_id: 0\n  res_id: 4\n  expired_time: +2d\n"
TARGETS = f"targets:\n  - imei: '{I1}'\n"
NO_TIMES = "defaults:\n  obj_id: 3\n  obj_inst_id: 0\n  res_id: 4\n"


def job_with(write_file: WriteFile, sections: str, *, rest: str = DEFAULTS + TARGETS) -> Job:
    """A YAML job whose first lines (from line 2) are ``sections``."""
    return load_job(write_file("job.yaml", "job: plan\n" + sections + rest))


def problems(job: Job, *, at: datetime = AT, strict: bool = False) -> list[str]:
    found: list[Problem] = []
    validate_job(job, at=at, strict=strict, on_problem=found.append)
    return [("warning: " if p.warning else "") + str(p).split(":", 1)[1] for p in found]


def validation(job: Job, *, at: datetime = AT) -> tuple[Validation, list[str]]:
    found: list[str] = []
    result = validate_job(job, at=at, on_problem=lambda p: found.append(str(p)))
    return result, found


# --- rollout: --------------------------------------------------------------------------------


def test_a_full_rollout_section_is_read_into_the_plan(write_file: WriteFile) -> None:
    job = job_with(
        write_file,
        "rollout:\n"
        "  canary:\n"
        "    size: 50\n"
        "    wait: delivered\n"
        "    timeout: 30m\n"
        "    then: pause\n"
        "  ramp:\n"
        "    start_per_second: 2\n"
        "    factor: 1.5\n"
        "    every_accepted: 100\n"
        "  abort:\n"
        "    max_failure_rate: 0.05\n"
        "    min_decided: 20\n"
        "    on_errnos: [3, 5006]\n",
    )
    assert job.plan.rollout == Rollout(
        canary=Canary(size=50, wait="delivered", timeout_s=1800.0, then="pause"),
        ramp=Ramp(start_per_second=2.0, factor=1.5, every_accepted=100),
        abort=Abort(max_failure_rate=0.05, min_decided=20, on_errnos=frozenset({3, 5006})),
    )
    assert problems(job) == []


def test_keys_left_out_take_their_defaults(write_file: WriteFile) -> None:
    job = job_with(
        write_file,
        "rollout:\n  canary: {size: '2%'}\n  ramp: {start_per_second: 0.5}\n"
        "  abort: {on_errnos: [7]}\n",
    )
    assert job.plan.rollout == Rollout(
        canary=Canary(percent=2.0),
        ramp=Ramp(start_per_second=0.5),
        abort=Abort(on_errnos=frozenset({7})),
    )
    assert job.plan.rollout.canary == Canary(percent=2.0, wait="accepted", then="continue")


@pytest.mark.parametrize(
    ("written", "canary"),
    [("50", Canary(size=50)), ("'2%'", Canary(percent=2.0)), ("0.5%", Canary(percent=0.5))],
)
def test_the_short_canary_form_is_its_size(
    write_file: WriteFile, written: str, canary: Canary
) -> None:
    job = job_with(write_file, f"rollout:\n  canary: {written}\n")
    assert job.plan.rollout == Rollout(canary=canary)
    assert problems(job) == []


def test_a_job_without_the_sections_has_the_default_plan(write_file: WriteFile) -> None:
    assert job_with(write_file, "").plan == Plan()
    assert (
        load_job(
            write_file(
                "fleet.csv", f"imei,obj_id,obj_inst_id,res_id,expired_time\n{I1},3,0,4,+2d\n"
            )
        ).plan
        == Plan()
    )


@pytest.mark.parametrize(
    ("sections", "expected"),
    [
        ("rollout:\n  canary: 0\n", "3: rollout.canary: must be a number of commands (1 or more)"),
        ("rollout:\n  canary: '0%'\n", "3: rollout.canary: a share must be more than 0%"),
        ("rollout:\n  canary: '101%'\n", "3: rollout.canary: a share must be more than 0%"),
        ("rollout:\n  canary: -5\n", "3: rollout.canary: must be a number of commands"),
        ("rollout:\n  canary: [1]\n", "3: rollout.canary: must be a size (50, or 2%)"),
        ("rollout:\n  canary:\n", "3: rollout.canary: is empty (null)"),
        ("rollout:\n  canary:\n    size: 1.5\n", "4: rollout.canary.size: must be a number"),
        ("rollout:\n  canary:\n    size: ~\n", "4: rollout.canary.size: is empty (null)"),
        ("rollout:\n  canary:\n    wait: accepted\n", "3: rollout.canary.size: is required"),
        (
            "rollout:\n  canary:\n    size: 5\n    wait: soon\n",
            "5: rollout.canary.wait: must be accepted or delivered, got 'soon'",
        ),
        (
            "rollout:\n  canary:\n    size: 5\n    wait: [accepted]\n",
            "5: rollout.canary.wait: must be one value, not a list",
        ),
        (
            "rollout:\n  canary:\n    size: 5\n    wait: delivered\n    timeout: 0s\n",
            "6: rollout.canary.timeout: must be longer than zero",
        ),
        (
            "rollout:\n  canary:\n    size: 5\n    wait: delivered\n    timeout: 31d\n",
            "6: rollout.canary.timeout: must be at most 30 days",
        ),
        (
            "rollout:\n  canary:\n    size: 5\n    wait: delivered\n    timeout: 30\n",
            "6: rollout.canary.timeout: must be a duration such as 90s, 30m, 2h or 1d",
        ),
        (
            "rollout:\n  canary:\n    size: 5\n    then: stop\n",
            "5: rollout.canary.then: must be continue or pause, got 'stop'",
        ),
        (
            "rollout:\n  canary:\n    size: 5\n    sise: 6\n",
            "5: rollout.canary.sise: unknown field (did you mean size?)",
        ),
        (
            "rollout:\n  canary:\n    size: 5\n    size: 6\n",
            "5: rollout.canary.size: given twice (first on line 4)",
        ),
        ("rollout:\n  ramp: 5\n", "3: rollout.ramp: must be a mapping with start_per_second:"),
        (
            "rollout:\n  ramp:\n    factor: 2\n",
            "3: rollout.ramp.start_per_second: is required",
        ),
        (
            "rollout:\n  ramp:\n    start_per_second: 0\n",
            "4: rollout.ramp.start_per_second: must be more than 0, got 0",
        ),
        (
            "rollout:\n  ramp:\n    start_per_second: .nan\n",
            "4: rollout.ramp.start_per_second: must be a number, got '.nan'",
        ),
        (
            "rollout:\n  ramp:\n    start_per_second: fast\n",
            "4: rollout.ramp.start_per_second: must be a number, got 'fast'",
        ),
        (
            "rollout:\n  ramp:\n    start_per_second: 1\n    factor: 0.9\n",
            "5: rollout.ramp.factor: must be 1 or more, got 0.9",
        ),
        (
            "rollout:\n  ramp:\n    start_per_second: 1\n    every_accepted: 0\n",
            "5: rollout.ramp.every_accepted: must be 1 or more, got 0",
        ),
        (
            "rollout:\n  ramp:\n    start_per_second: 1\n    every_accepted: 1e2\n",
            "5: rollout.ramp.every_accepted: must be a whole number, got '1e2'",
        ),
        (
            "rollout:\n  abort:\n    max_failure_rate: 1.5\n",
            "4: rollout.abort.max_failure_rate: must be from 0 to 1 (0.05 is 5%), got 1.5",
        ),
        (
            "rollout:\n  abort:\n    max_failure_rate: 5%\n",
            "4: rollout.abort.max_failure_rate: must be a fraction from 0 to 1 (write 0.05 for 5%)",
        ),
        (
            "rollout:\n  abort:\n    max_failure_rate: 0.1\n    min_decided: 0\n",
            "5: rollout.abort.min_decided: must be 1 or more, got 0",
        ),
        (
            "rollout:\n  abort:\n    on_errnos: 3\n",
            "4: rollout.abort.on_errnos: must be a list of errnos, e.g. [3, 5006]",
        ),
        (
            "rollout:\n  abort:\n    on_errnos:\n      - 3\n      - x\n",
            "6: rollout.abort.on_errnos: must be a whole number, got 'x'",
        ),
        (
            "rollout:\n  abort:\n    on_errnos: [-1]\n",
            "4: rollout.abort.on_errnos: must be an errno, 0 or more, got -1",
        ),
        (
            "rollout:\n  abort:\n    min_decided: 5\n",
            "3: rollout.abort: gives no rule: set max_failure_rate or on_errnos",
        ),
        ("rollout:\n  canery: 5\n", "3: rollout.canery: unknown field (did you mean canary?)"),
        ("rollout:\n", "2: rollout: is empty (null)"),
        ("rollout: [canary]\n", "2: rollout: must be a mapping of canary:, ramp: and abort:"),
        ("rolout:\n  canary: 5\n", "2: rolout: unknown field (did you mean rollout?)"),
    ],
)
def test_each_rollout_problem_names_its_line_and_key(
    write_file: WriteFile, sections: str, expected: str
) -> None:
    found = problems(job_with(write_file, sections))
    assert len(found) == 1, found
    assert found[0].startswith(expected), found


def test_every_rollout_problem_is_reported_not_only_the_first(write_file: WriteFile) -> None:
    job = job_with(
        write_file,
        "rollout:\n"
        "  canary:\n"
        "    size: 0\n"
        "    wait: soon\n"
        "  ramp:\n"
        "    start_per_second: -1\n"
        "    factor: 0\n"
        "  abort:\n"
        "    max_failure_rate: 2\n",
    )
    lines = [p.split(":")[0] for p in problems(job)]
    assert lines == ["4", "5", "7", "8", "10"]
    result, _ = validation(job)
    assert (result.errors, result.commands) == (5, 1)


def test_a_timeout_without_waiting_for_delivery_is_a_warning(write_file: WriteFile) -> None:
    job = job_with(write_file, "rollout:\n  canary:\n    size: 5\n    timeout: 1h\n")
    assert problems(job) == [
        "warning: 5: rollout.canary.timeout: applies only with wait: delivered (waiting for"
        " the devices); it is ignored"
    ]
    assert problems(job, strict=True)[0].startswith("5: rollout.canary.timeout: applies only")
    accepted = job_with(
        write_file, "rollout:\n  canary:\n    size: 5\n    wait: accepted\n    timeout: 1h\n"
    )
    assert problems(accepted)[0].startswith("warning: 6: rollout.canary.timeout")


def test_min_decided_without_a_failure_rate_is_a_warning(write_file: WriteFile) -> None:
    job = job_with(write_file, "rollout:\n  abort:\n    on_errnos: [3]\n    min_decided: 9\n")
    assert problems(job) == [
        "warning: 5: rollout.abort.min_decided: applies to max_failure_rate, which is not set;"
        " it is ignored"
    ]


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("50", (50, None)),
        (" 7 ", (7, None)),
        ("2%", (None, 2.0)),
        ("100%", (None, 100.0)),
        ("0.5 %", (None, 0.5)),
    ],
)
def test_canary_sizes_are_read_as_a_count_or_a_share(
    text: str, size: tuple[int | None, float | None]
) -> None:
    assert parse_canary_size(text) == size


@pytest.mark.parametrize("text", ["0", "-1", "1.5", "0%", "100.1%", "%", "fifty", "", "2 %%"])
def test_bad_canary_sizes_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_canary_size(text)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("30m", 1800),
        ("2h", 7200),
        ("1d", 86400),
        ("+30m", 1800),
        ("1h30m", 5400),
        ("30d", 30 * 86400),
    ],
)
def test_durations_are_read_in_seconds(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["30", "0m", "30d1s", "", "soon", "-5m", "99999999999d"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


# --- the rollout flags -----------------------------------------------------------------------


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


# --- schedule: -------------------------------------------------------------------------------


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


# --- window: ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("section", "window"),
    [
        ("window:\n  daily: '02:00-06:00'\n", DailyWindow(time(2), time(6))),
        ("window: 02:00-06:00\n", DailyWindow(time(2), time(6))),
        ("window:\n  daily: 2:30-6:15\n  tz: UTC+8\n", DailyWindow(time(2, 30), time(6, 15))),
        (
            "window:\n  daily: '22:00-02:00'\n  tz: Europe/Berlin\n",
            DailyWindow(time(22), time(2), ZoneInfo("Europe/Berlin"), "Europe/Berlin"),
        ),
        (
            "window:\n  daily: '02:00-06:00'\n  tz: '+01:00'\n",
            DailyWindow(time(2), time(6), ZoneInfo("Etc/GMT-1"), "+01:00"),
        ),
    ],
)
def test_the_window_section_is_read_into_the_plan(
    write_file: WriteFile, section: str, window: DailyWindow
) -> None:
    job = job_with(write_file, section, rest=NO_TIMES + TARGETS)
    assert job.plan.window is not None
    got = job.plan.window
    assert (got.opens, got.closes, got.zone_name) == (window.opens, window.closes, window.zone_name)
    some = datetime(2030, 6, 1, tzinfo=UTC)
    assert got.zone.utcoffset(some) == window.zone.utcoffset(some)
    assert problems(job) == []


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ("window:\n  daily: '02:00'\n", "3: window.daily: '02:00' is not a daily window"),
        ("window:\n  daily: '02:00-02:00'\n", "3: window.daily: '02:00-02:00' opens and closes"),
        ("window:\n  daily: '02:00-24:00'\n", "3: window.daily: '02:00-24:00' is not a time of"),
        ("window:\n  daily: '25:00-02:00'\n", "3: window.daily: '25:00-02:00' is not a time of"),
        (
            "window:\n  daily: '02:00-06:00'\n  tz: Europe/Berln\n",
            "4: window.tz: 'Europe/Berln' is not a time zone (did you mean Europe/Berlin?)",
        ),
        (
            "window:\n  daily: '02:00-06:00'\n  tz: europe/berlin\n",
            "4: window.tz: 'europe/berlin' is not a time zone (did you mean Europe/Berlin?)",
        ),
        ("window:\n  daily: '02:00-06:00'\n  tz: UTC+25\n", "4: window.tz: 'UTC+25' is not a"),
        ("window:\n  daily: '02:00-06:00'\n  tz:\n", "4: window.tz: is empty (null)"),
        ("window:\n  tz: UTC\n", "2: window.daily: is required"),
        ("window:\n  dialy: '02:00-06:00'\n", "3: window.dialy: unknown field (did you mean"),
        ("window: [02:00-06:00]\n", "2: window: must be a mapping with daily: (and tz:)"),
    ],
)
def test_window_problems_name_their_line_and_key(
    write_file: WriteFile, section: str, expected: str
) -> None:
    found = problems(job_with(write_file, section, rest=NO_TIMES + TARGETS))
    assert any(p.startswith(expected) for p in found), found


def test_both_window_keys_are_reported_when_both_are_wrong(write_file: WriteFile) -> None:
    found = problems(job_with(write_file, "window:\n  daily: '2-6'\n  tz: Mars/Base\n"))
    assert [p.split(": ")[1] for p in found] == ["window.daily", "window.tz"]


WINDOWED = "window:\n  daily: '22:00-02:00'\n  tz: Europe/Berlin\n" + NO_TIMES


def test_a_window_gives_every_command_its_times(write_file: WriteFile) -> None:
    write_file("more.csv", f"imei,args\n{I3},x\n")
    job = job_with(
        write_file, WINDOWED, rest=f"targets:\n  - imei: '{I1}'\n  - {I2}\ntargets_csv: more.csv\n"
    )
    result, found = validation(job)
    assert found == []
    commands = list(job.commands())
    assert [c.imei for c in commands] == [I1, I2, I3]
    berlin = ZoneInfo("Europe/Berlin")
    for c in commands:
        assert c.valid_time is not None
        assert c.valid_time.text == "window 22:00-02:00 Europe/Berlin start"
        assert c.expired_time.text == "window 22:00-02:00 Europe/Berlin end"
        assert parse_timespec(c.valid_time.text) == c.valid_time
        assert parse_timespec(c.expired_time.text) == c.expired_time
        # 2030-01-01T12:00 UTC+8 is 05:00 in Berlin: the window of that evening.
        assert c.valid_time.resolve(AT) == datetime(2030, 1, 1, 22, tzinfo=berlin)
        assert c.expired_time.resolve(AT) == datetime(2030, 1, 2, 2, tzinfo=berlin)
        # Sent inside the window: that window, its start passed.
        inside = datetime(2030, 1, 2, 1, 0, tzinfo=berlin)
        assert c.valid_time.resolve(inside) == datetime(2030, 1, 1, 22, tzinfo=berlin)
        assert c.expired_time.resolve(inside) == datetime(2030, 1, 2, 2, tzinfo=berlin)
    assert result.window_start == datetime(2030, 1, 1, 22, tzinfo=berlin)
    assert result.window_end == datetime(2030, 1, 2, 2, tzinfo=berlin)


def test_a_window_open_at_the_start_is_never_past(write_file: WriteFile) -> None:
    job = job_with(write_file, WINDOWED, rest=TARGETS)
    inside = datetime(2030, 1, 2, 1, 0, tzinfo=ZoneInfo("Europe/Berlin"))
    result, found = validation(job, at=inside)
    assert found == [] and result.ok
    assert result.window_start == inside  # from now: its start has passed
    assert result.window_end == datetime(2030, 1, 2, 2, tzinfo=ZoneInfo("Europe/Berlin"))


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("defaults", "9: valid_time: window: gives the times; remove valid_time"),
        ("target", "11: valid_time: window: gives the times; remove valid_time"),
    ],
)
def test_a_window_and_a_valid_time_is_an_error_naming_the_field(
    write_file: WriteFile, where: str, expected: str
) -> None:
    defaults = WINDOWED + ("  valid_time: +1h\n" if where == "defaults" else "")
    target = f"targets:\n  - imei: '{I1}'\n" + (
        "    valid_time: +1h\n" if where == "target" else ""
    )
    if where == "defaults":
        target = f"targets:\n  - imei: '{I1}'\n"
    found = problems(job_with(write_file, defaults, rest=target))
    assert found == [expected]


def test_a_window_and_expired_times_in_targets_and_the_csv_are_errors(
    write_file: WriteFile,
) -> None:
    write_file("more.csv", f"imei,expired_time,valid_time\n{I3},+2d,\n{I2},,\n")
    job = job_with(
        write_file,
        WINDOWED,
        rest=f"targets:\n  - imei: '{I1}'\n    expired_time: +2d\ntargets_csv: more.csv\n",
    )
    result, found = validation(job)
    assert found == [
        f"{job.source}:11: expired_time: window: gives the times; remove expired_time",
        f"{job.csv_source}:2: expired_time: window: gives the times; remove expired_time",
    ]
    assert (result.commands, result.errors) == (1, 2)  # the CSV's row 3 gives no time


def test_without_a_window_expired_time_is_still_required(write_file: WriteFile) -> None:
    job = job_with(write_file, NO_TIMES, rest=TARGETS)
    assert problems(job) == ["7: expired_time: is required"]


def test_the_fingerprint_changes_with_the_window(write_file: WriteFile) -> None:
    rest = NO_TIMES + TARGETS
    prints = set()
    for section in (
        "window:\n  daily: '02:00-06:00'\n",
        "window:\n  daily: '02:00-07:00'\n",
        "window:\n  daily: '02:00-06:00'\n  tz: Europe/Berlin\n",
        "window:\n  daily: '02:00-06:00'\n  tz: '+01:00'\n",
    ):
        result, found = validation(job_with(write_file, section, rest=rest))
        assert found == []
        prints.add(result.fingerprint)
    assert len(prints) == 4
    same, _ = validation(
        job_with(write_file, "window:\n  daily: '02:00-06:00'\n  tz: UTC+8\n", rest=rest)
    )
    again, _ = validation(job_with(write_file, "window:\n  daily: 2:00-6:00\n", rest=rest))
    assert same.fingerprint == again.fingerprint  # the same window, written two ways


def test_window_texts_in_command_fields_are_read_and_never_past(write_file: WriteFile) -> None:
    # As a job written from a ledger gives them (retry-failed), with no window: section.
    path = write_file(
        "retry.csv",
        "imei,obj_id,obj_inst_id,res_id,valid_time,expired_time\n"
        f"{I1},3,0,4,window 02:00-06:00 start,window 02:00-06:00 end\n",
    )
    inside = datetime(2030, 1, 1, 3, 0, tzinfo=BEIJING)
    result, found = validation(load_job(path), at=inside)
    assert found == [] and result.ok
    (command,) = load_job(path).commands()
    assert command.expired_time.resolve(inside) == datetime(2030, 1, 1, 6, tzinfo=BEIJING)

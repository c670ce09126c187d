"""The job file's window: section: read into the plan, its problems, the times it gives every
command, and what it rules out."""

from __future__ import annotations

from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

import pytest

from dispatcher.job.model import load_job
from dispatcher.times import BEIJING, DailyWindow, parse_timespec
from tests.support.files import WriteFile
from tests.support.jobs import AT, I1, I2, I3
from tests.support.plans import (
    TARGETS,
    job_with,
    problems,
    validation,
)

NO_TIMES = "defaults:\n  obj_id: 3\n  obj_inst_id: 0\n  res_id: 4\n"


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

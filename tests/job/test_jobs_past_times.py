"""Times that pass between validating a job and sending it: warned about, allowed, never an
excuse for a window that ends before it starts."""

from __future__ import annotations

from datetime import datetime

import pytest

from dispatcher.errors import JobFileError
from dispatcher.job.model import (
    Problem,
    load_job,
    validate_job,
)
from dispatcher.times import BEIJING
from tests.support.files import WriteFile
from tests.support.jobs import (
    AT,
    I1,
    I2,
    I3,
    commands,
    yaml_job,
)

PAST = (
    f"  - imei: '{I1}'\n    valid_time: '2030-01-01T11:00:00'\n"
    f"  - imei: '{I2}'\n    expired_time: '2030-01-01T11:30:00'\n"
    f"  - imei: '{I3}'\n"
)


def test_commands_are_given_when_their_times_passed_since_validation(
    write_file: WriteFile,
) -> None:
    # Every time here is in the past now: sending settles them, reading does not refuse them.
    path = write_file("j.yaml", yaml_job(PAST.replace("2030-01-01", "2001-01-01")))
    first, second, third = commands(path)
    assert first.valid_time is not None and first.valid_time.text == "2001-01-01T11:00:00"
    assert second.expired_time.text == "2001-01-01T11:30:00"
    assert third.imei == I3


def test_past_times_warn_keeps_the_commands_and_says_what_sending_does(
    write_file: WriteFile,
) -> None:
    path = write_file("j.yaml", yaml_job(PAST))
    found: list[Problem] = []
    result = validate_job(load_job(path), at=AT, past_times="warn", on_problem=found.append)
    assert [str(p) for p in found] == [
        f"{path}:9: valid_time: 2030-01-01T11:00:00 has passed: the command is sent without it"
        " (delivery may start at once)",
        f"{path}:11: expired_time: 2030-01-01T11:30:00 has passed: the command will not be sent"
        " and is recorded as expired",
    ]
    assert all(p.warning for p in found)
    assert (result.commands, result.errors, result.warnings) == (3, 0, 2)
    scanned = list(load_job(path).scan(at=AT, past_times="warn"))
    assert [type(item).__name__ for item in scanned] == [
        "Problem",
        "Command",
        "Problem",
        "Command",
        "Command",
    ]


def test_past_times_allow_reports_nothing_and_keeps_the_commands(write_file: WriteFile) -> None:
    path = write_file("j.yaml", yaml_job(PAST))
    found: list[Problem] = []
    result = validate_job(load_job(path), at=AT, past_times="allow", on_problem=found.append)
    assert (found, result.commands, result.ok) == ([], 3, True)
    assert result.window_end == datetime(2030, 1, 3, 12, tzinfo=BEIJING)


def test_a_passed_default_time_is_one_warning(write_file: WriteFile) -> None:
    defaults = "obj_id: 3\n  obj_inst_id: 0\n  res_id: 4\n  expired_time: '2030-01-01T00:00:00'"
    path = write_file("j.yaml", yaml_job(f"  - '{I1}'\n  - '{I2}'\n", defaults))
    found: list[Problem] = []
    result = validate_job(load_job(path), at=AT, past_times="warn", on_problem=found.append)
    assert [(p.line, p.field, p.warning) for p in found] == [(6, "expired_time", True)]
    assert result.commands == 2


def test_expired_before_valid_is_an_error_whatever_past_times_says(write_file: WriteFile) -> None:
    path = write_file(
        "j.yaml",
        yaml_job(
            f"  - imei: '{I1}'\n    valid_time: '2001-01-02T00:00:00'\n"
            "    expired_time: '2001-01-01T00:00:00'\n"
        ),
    )
    for past_times in ("warn", "allow"):
        found: list[Problem] = []
        validate_job(load_job(path), past_times=past_times, on_problem=found.append)
        assert [str(p) for p in found if not p.warning] == [
            f"{path}:10: expired_time: must be later than valid_time (2001-01-02T00:00:00)"
        ]
    with pytest.raises(JobFileError, match=":10: expired_time: must be later than valid_time"):
        commands(path)

"""YAML jobs: targets take defaults, each problem cites its line, times against the moment of
checking, what a validation reports."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from dispatcher.job.model import (
    Command,
    Problem,
    Validation,
    command_key,
    job_fingerprint,
    load_job,
    validate_job,
)
from dispatcher.times import BEIJING, format_onenet
from tests.support.files import WriteFile
from tests.support.jobs import (
    AT,
    I1,
    I2,
    I3,
    check,
    commands,
    yaml_job,
)


def test_yaml_targets_take_defaults_and_override_them(write_file: WriteFile) -> None:
    path = write_file(
        "job.yaml",
        "job: fw push\n"
        "defaults:\n"
        "  obj_id: 5\n"
        "  obj_inst_id: 0\n"
        "  res_id: 2\n"
        "  args: fw=2.4.1\n"
        "  expired_time: '2030-01-03T00:00:00'\n"
        "  trigger: [register, notify]\n"
        "targets:\n"
        f"  - imei: '{I1}'\n"
        f"  - imei: {I2}\n"
        "    args: fw=2.4.2\n"
        "    retry: 0\n"
        "    timeout: 40\n"
        "    trigger_msg: 2\n"
        "    valid_time: +1h\n",
    )
    job = load_job(path)
    assert (job.name, job.format, job.allow_duplicates) == ("fw push", "yaml", False)
    first, second = job.commands()
    assert first == Command(
        imei=I1,
        obj_id=5,
        obj_inst_id=0,
        res_id=2,
        expired_time=first.expired_time,
        args="fw=2.4.1",
        trigger_msg=5,
        source=str(path),
        line=10,
        key=command_key(I1, 5, 0, 2, "fw=2.4.1"),
    )
    assert first.expired_time.text == "2030-01-03T00:00:00"
    assert (second.imei, second.args, second.retry, second.timeout) == (I2, "fw=2.4.2", 0, 40)
    assert (second.trigger_msg, second.line) == (2, 11)
    assert second.valid_time is not None and second.valid_time.offset == timedelta(hours=1)


def test_job_name_defaults_to_the_file_stem(write_file: WriteFile) -> None:
    path = write_file("night-push.yml", yaml_job(f"  - imei: '{I1}'\n").replace("job: test\n", ""))
    assert load_job(path).name == "night-push"


def test_imei_may_be_a_yaml_integer_and_is_taken_as_written(write_file: WriteFile) -> None:
    # 012345670123453 would be an octal integer in YAML 1.1: the text as written is the IMEI.
    path = write_file("j.yaml", yaml_job(f"  - imei: {I1}\n  - imei: 012345670123453\n"))
    assert [c.imei for c in commands(path)] == [I1, "012345670123453"]


def test_bare_imei_is_a_target(write_file: WriteFile) -> None:
    path = write_file("j.yaml", yaml_job(f"  - {I1}\n  - '{I2}'\n"))
    assert [c.imei for c in commands(path)] == [I1, I2]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("obj_id", "65536", "obj_id: must be a whole number from 0 to 65535, got '65536'"),
        ("obj_inst_id", "-1", "obj_inst_id: must be a whole number from 0 to 65535, got '-1'"),
        ("res_id", "0x10", "res_id: must be a whole number from 0 to 65535, got '0x10'"),
        ("retry", "11", "retry: must be a whole number from 0 to 10"),
        ("timeout", "4", "timeout: must be a whole number from 5 to 40 seconds, got '4'"),
        ("timeout", "41", "timeout: must be a whole number from 5 to 40 seconds, got '41'"),
        ("trigger_msg", "0", "trigger_msg: must be a whole number from 1 to 7"),
        ("trigger_msg", "8", "trigger_msg: must be a whole number from 1 to 7"),
        (
            "trigger",
            "[register, updat]",
            "trigger: unknown uplink kind 'updat' (did you mean update?)",
        ),
        ("trigger", "[]", "trigger: names no uplink kind"),
        ("args", "'" + "é" * 1025 + "'", "args: is 2050 bytes in UTF-8; OneNET takes at most 2048"),
        ("expired_time", "tomorrow", "expired_time: 'tomorrow' is not a time"),
        ("valid_time", "+0m", "valid_time: '+0m' must be later than the moment of sending"),
        ("imei", "'12345'", "imei: must be 15 digits, got '12345'"),
        ("imei", "8.6e14", "imei: must be 15 digits, got '8.6e14'"),
    ],
)
def test_each_field_rule_cites_the_line_of_the_value(
    write_file: WriteFile, field: str, value: str, message: str
) -> None:
    imei = "" if field == "imei" else f"'{I1}'"
    body = f"  - imei: {imei}\n    {field}: {value}\n" if imei else f"  - imei: {value}\n"
    path = write_file("j.yaml", yaml_job(body))
    result, problems = check(path)
    line = 9 if imei else 8
    assert len(problems) == 1
    assert problems[0].startswith(f"{path}:{line}: {message}")
    assert (result.errors, result.commands) == (1, 0)


def test_args_of_exactly_2048_bytes_are_accepted(write_file: WriteFile) -> None:
    path = write_file("j.yaml", yaml_job(f"  - imei: '{I1}'\n    args: '{'é' * 1024}'\n"))
    assert check(path) == (check(path)[0], [])
    assert check(path)[0].commands == 1


def test_missing_field_cites_the_target_entry_line(write_file: WriteFile) -> None:
    path = write_file(
        "j.yaml",
        f"defaults:\n  obj_id: 3\n  obj_inst_id: 0\ntargets:\n  - imei: '{I1}'\n    res_id: 4\n"
        "  - res_id: 5\n    expired_time: +1d\n",
    )
    _, problems = check(path)
    assert problems == [
        f"{path}:5: expired_time: is required",
        f"{path}:7: imei: is required",
    ]


def test_bad_default_is_reported_once_at_the_defaults_line(write_file: WriteFile) -> None:
    targets = "".join(f"  - imei: '{i}'\n" for i in (I1, I2, I3))
    path = write_file(
        "j.yaml", yaml_job(targets, "obj_id: 3\n  obj_inst_id: 0\n  res_id: 4\n  expired_time: +2x")
    )
    result, problems = check(path)
    assert problems == [
        f"{path}:6: expired_time: '+2x' is not a relative time: write e.g. "
        "+90s, +30m, +6h, +2d, +1d12h"
    ]
    assert (result.errors, result.commands) == (1, 0)


def test_target_value_replaces_a_bad_default(write_file: WriteFile) -> None:
    path = write_file(
        "j.yaml",
        yaml_job(
            f"  - imei: '{I1}'\n    retry: 2\n",
            "obj_id: 3\n  obj_inst_id: 0\n  res_id: 4\n  expired_time: +1d\n  retry: 99",
        ),
    )
    result, problems = check(path)
    assert problems == [
        f"{path}:7: retry: must be a whole number from 0 to 10 (OneNET's delivery retries), "
        "got '99'"
    ]
    assert result.commands == 1


def test_expired_before_valid_cites_the_line_of_the_target_value(write_file: WriteFile) -> None:
    path = write_file(
        "j.yaml",
        yaml_job(
            f"  - imei: '{I1}'\n    valid_time: +3d\n"  # expired +2d from defaults: cite valid_time
            f"  - imei: '{I2}'\n    valid_time: +1h\n    expired_time: +1h\n"
        ),
    )
    _, problems = check(path)
    assert problems == [
        f"{path}:9: valid_time: must be earlier than expired_time (+2d)",
        f"{path}:12: expired_time: must be later than valid_time (+1h)",
    ]


def test_expired_before_valid_in_defaults_is_reported_once(write_file: WriteFile) -> None:
    defaults = "obj_id: 3\n  obj_inst_id: 0\n  res_id: 4\n  valid_time: +2d\n  expired_time: +1d"
    path = write_file("j.yaml", yaml_job(f"  - imei: '{I1}'\n  - imei: '{I2}'\n", defaults))
    result, problems = check(path)
    assert problems == [f"{path}:7: expired_time: must be later than valid_time (+2d)"]
    assert result.commands == 0


def test_times_in_the_past_are_errors_against_at(write_file: WriteFile) -> None:
    path = write_file(
        "j.yaml",
        yaml_job(
            f"  - imei: '{I1}'\n    expired_time: '2030-01-01T11:59:59'\n"
            f"  - imei: '{I2}'\n    valid_time: '2030-01-01T12:00:00'\n"
            f"  - imei: '{I3}'\n    expired_time: '2030-01-01T12:00:01'\n"
        ),
    )
    result, problems = check(path)
    assert problems == [
        f"{path}:9: expired_time: 2030-01-01T11:59:59 is in the past at the start checked against "
        "(2030-01-01T12:00:00 UTC+8); OneNET refuses it",
        f"{path}:11: valid_time: 2030-01-01T12:00:00 is in the past at the start checked against "
        "(2030-01-01T12:00:00 UTC+8); OneNET refuses it",
    ]
    assert result.commands == 1
    later, problems = check(path, at=AT + timedelta(seconds=1))
    assert later.commands == 0 and len(problems) == 3


def test_at_defaults_to_now(write_file: WriteFile) -> None:
    path = write_file(
        "j.yaml", yaml_job(f"  - imei: '{I1}'\n    expired_time: '2001-01-01T00:00:00'\n")
    )
    found: list[Problem] = []
    assert validate_job(load_job(path), on_problem=found.append).errors == 1
    assert "in the past" in found[0].message


def test_zoned_times_are_converted_and_naive_kept(write_file: WriteFile) -> None:
    path = write_file(
        "j.yaml",
        yaml_job(
            f"  - imei: '{I1}'\n    valid_time: 2030-01-02T00:00:00Z\n"
            "    expired_time: 2030-01-03 10:00:00\n"
        ),
    )
    (cmd,) = commands(path)
    assert cmd.valid_time is not None and cmd.valid_time.at is not None
    assert format_onenet(cmd.valid_time.at) == "2030-01-02T08:00:00"
    assert cmd.expired_time.text == "2030-01-03 10:00:00"
    assert cmd.expired_time.at is not None
    assert format_onenet(cmd.expired_time.at) == "2030-01-03T10:00:00"


def test_validation_reports_window_and_distinct_devices(write_file: WriteFile) -> None:
    path = write_file(
        "j.yaml",
        yaml_job(
            f"  - imei: '{I1}'\n    valid_time: +1h\n"
            f"  - imei: '{I1}'\n    res_id: 5\n    expired_time: '2030-01-05T00:00:00'\n"
            f"  - imei: '{I2}'\n    valid_time: '2030-01-01T12:30:00'\n"
        ),
    )
    result, problems = check(path)
    assert problems == []
    assert result == Validation(
        commands=3,
        devices=2,
        errors=0,
        warnings=0,
        window_start=AT,  # the second target has no valid_time: OneNET's now
        window_end=datetime(2030, 1, 5, tzinfo=BEIJING),
        fingerprint=job_fingerprint(
            "test", [c for c in load_job(path).scan(at=AT) if isinstance(c, Command)]
        ),
    )
    assert result.ok

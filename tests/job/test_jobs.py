from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from dispatcher.errors import JobFileError
from dispatcher.job.model import (
    Command,
    Job,
    Problem,
    Validation,
    command_fingerprint,
    command_key,
    job_fingerprint,
    load_job,
    validate_job,
)
from dispatcher.job.seen import SeenKeys
from dispatcher.job.values import luhn_check_digit, luhn_ok
from dispatcher.times import BEIJING, format_onenet, parse_timespec

WriteFile = Callable[[str, "str | bytes"], Path]
ROOT = Path(__file__).resolve().parents[2]
AT = datetime(2030, 1, 1, 12, 0, 0, tzinfo=BEIJING)
# Valid IMEIs (correct Luhn check digit).
I1, I2, I3, I4 = "490154203237518", "864512030000003", "358476090000076", "867231050000002"
BAD_LUHN = "490154203237519"
HEADER = "imei,obj_id,obj_inst_id,res_id,args,valid_time,expired_time,retry,timeout,trigger_msg\n"


def check(path: Path, *, at: datetime = AT, strict: bool = False) -> tuple[Validation, list[str]]:
    """Validate a job file; the result and every problem as the CLI would print it."""
    found: list[Problem] = []
    result = validate_job(load_job(path), at=at, strict=strict, on_problem=found.append)
    return result, [("warning: " if p.warning else "") + str(p) for p in found]


def commands(path: Path) -> list[Command]:
    return list(load_job(path).commands())


def yaml_job(
    targets: str, defaults: str = "obj_id: 3\n  obj_inst_id: 0\n  res_id: 4\n  expired_time: +2d"
) -> str:
    return f"job: test\ndefaults:\n  {defaults}\ntargets:\n{targets}"


# --- YAML jobs -------------------------------------------------------------------------------


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


def test_unknown_fields_are_errors_with_a_suggestion(write_file: WriteFile) -> None:
    path = write_file(
        "j.yaml",
        "job: x\nallow_duplicate: true\nobj_di: 3\n"
        "defaults:\n  obj_id: 3\n  obj_inst_id: 0\n  res_id: 4\n  expired_time: +1d\n"
        "  colour: red\n"
        f"targets:\n  - imei: '{I1}'\n    tigger_msg: 3\n",
    )
    result, problems = check(path)
    assert problems == [
        f"{path}:2: allow_duplicate: unknown field (did you mean allow_duplicates?)",
        f"{path}:3: obj_di: unknown field (did you mean obj_id?)",
        f"{path}:9: colour: unknown field",
        f"{path}:12: tigger_msg: unknown field (did you mean trigger_msg?)",
    ]
    assert result.commands == 0


def test_trigger_and_trigger_msg_together_are_an_error(write_file: WriteFile) -> None:
    path = write_file(
        "j.yaml", yaml_job(f"  - imei: '{I1}'\n    trigger: update\n    trigger_msg: 2\n")
    )
    _, problems = check(path)
    assert problems == [f"{path}:9: trigger: give trigger or trigger_msg"]


def test_target_trigger_overrides_default_trigger_msg(write_file: WriteFile) -> None:
    defaults = "obj_id: 3\n  obj_inst_id: 0\n  res_id: 4\n  expired_time: +1d\n  trigger_msg: 1"
    path = write_file(
        "j.yaml", yaml_job(f"  - imei: '{I1}'\n    trigger: update notify\n  - '{I2}'\n", defaults)
    )
    assert [c.trigger_msg for c in commands(path)] == [6, 1]


def test_field_given_twice_and_non_scalar_values_are_errors(write_file: WriteFile) -> None:
    path = write_file(
        "j.yaml",
        yaml_job(f"  - imei: '{I1}'\n    res_id: 1\n    res_id: 2\n    args: [a, b]\n  - [x]\n"),
    )
    _, problems = check(path)
    assert problems == [
        f"{path}:10: res_id: given twice (first on line 9)",
        f"{path}:11: args: must be a single value, not a list",
        f"{path}:12: targets: each target must be a mapping (imei: ...)",
        f"{path}:12: imei: is required",
    ]


def test_luhn_is_a_warning_and_an_error_when_strict(write_file: WriteFile) -> None:
    path = write_file("j.yaml", yaml_job(f"  - imei: '{I1}'\n  - imei: '{BAD_LUHN}'\n"))
    result, problems = check(path)
    message = f"{path}:9: imei: check digit is wrong (Luhn: 490154203237518); is there a typo?"
    assert problems == ["warning: " + message]
    assert (result.commands, result.warnings, result.errors, result.ok) == (2, 1, 0, True)
    strict, problems = check(path, strict=True)
    assert problems == [message]
    assert (strict.commands, strict.warnings, strict.errors, strict.ok) == (1, 0, 1, False)


def test_luhn_helpers() -> None:
    assert luhn_ok(I1) and not luhn_ok(BAD_LUHN)
    assert luhn_check_digit(I1[:14]) == 8


def test_duplicate_command_is_an_error_citing_the_first(write_file: WriteFile) -> None:
    path = write_file(
        "j.yaml",
        yaml_job(
            f"  - imei: '{I1}'\n  - imei: '{I1}'\n    res_id: 5\n  - imei: {I1}\n"
            f"  - imei: '{I1}'\n    args: other\n"
        ),
    )
    result, problems = check(path)
    assert problems == [
        f"{path}:11: imei: the same command (imei, obj_id, obj_inst_id, res_id, args) as line 8;"
        " set allow_duplicates: true to send it again"
    ]
    assert (result.commands, result.devices) == (3, 1)
    with pytest.raises(JobFileError, match=":11: imei: the same command"):
        commands(path)


def test_allow_duplicates_gives_each_copy_its_own_key(write_file: WriteFile) -> None:
    path = write_file(
        "j.yaml",
        "allow_duplicates: true\n" + yaml_job(f"  - '{I1}'\n  - '{I2}'\n  - '{I1}'\n  - '{I1}'\n"),
    )
    assert check(path)[1] == []
    keys = [c.key for c in commands(path)]
    assert keys == [
        command_key(I1, 3, 0, 4, None, 0),
        command_key(I2, 3, 0, 4, None, 0),
        command_key(I1, 3, 0, 4, None, 1),
        command_key(I1, 3, 0, 4, None, 2),
    ]
    assert keys == [c.key for c in commands(path)]  # stable from one read to the next


def test_command_key_depends_on_every_identity_field() -> None:
    base = command_key(I1, 1, 2, 3, "a")
    others = {
        command_key(I2, 1, 2, 3, "a"),
        command_key(I1, 9, 2, 3, "a"),
        command_key(I1, 1, 9, 3, "a"),
        command_key(I1, 1, 2, 9, "a"),
        command_key(I1, 1, 2, 3, "b"),
        command_key(I1, 1, 2, 3, None),
        command_key(I1, 1, 2, 3, "a", 1),
    }
    assert base not in others and len(others) == 7 and len(base) == 32


def test_problem_prints_file_line_field_message() -> None:
    assert str(Problem("a.csv", 3, "retry", "too big")) == "a.csv:3: retry: too big"
    assert str(Problem("a.csv", 3, "", "no rows")) == "a.csv:3: no rows"


def test_commands_raise_on_the_first_error_but_pass_warnings(write_file: WriteFile) -> None:
    path = write_file(
        "j.yaml", yaml_job(f"  - imei: '{BAD_LUHN}'\n  - imei: '{I2}'\n    retry: x\n")
    )
    seen: list[str] = []
    with pytest.raises(JobFileError) as err:
        for cmd in load_job(path).commands():
            seen.append(cmd.imei)
    assert seen == [BAD_LUHN]
    assert (err.value.line, err.value.field) == (10, "retry")


def test_scan_yields_commands_and_problems_in_file_order(write_file: WriteFile) -> None:
    path = write_file("j.yaml", yaml_job(f"  - imei: '{I1}'\n  - imei: '1'\n  - imei: '{I2}'\n"))
    kinds = [type(item).__name__ for item in load_job(path).scan(at=AT)]
    assert kinds == ["Command", "Problem", "Command"]


# --- times that pass before sending ----------------------------------------------------------

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


# --- the fingerprint --------------------------------------------------------------------------

FLEET = [f"{I1},3303,0,5605,on,+1d,7", f"{I2},3303,0,5605,off,+2d,2", f"{I3},3303,0,5605,on,+1d,3"]
FLEET_HEADER = "imei,obj_id,obj_inst_id,res_id,args,expired_time,trigger_msg\n"


def fingerprint(write_file: WriteFile, rows: list[str], name: str = "fleet.csv") -> str:
    path = write_file(name, FLEET_HEADER + "\n".join(rows) + "\n")
    result, problems = check(path)
    assert problems == [] and result.commands == len(rows)
    return result.fingerprint


def test_fingerprint_does_not_depend_on_the_order_of_rows(write_file: WriteFile) -> None:
    assert fingerprint(write_file, FLEET) == fingerprint(write_file, FLEET[::-1])


def test_fingerprint_changes_with_any_field_sent(write_file: WriteFile) -> None:
    base = fingerprint(write_file, FLEET)
    changed = [
        [*FLEET[:2], FLEET[2].removesuffix(",3") + ",5"],  # one trigger_msg
        [*FLEET[:2], FLEET[2].replace("+1d", "+25h")],  # one expired_time's text
        [*FLEET[:2], FLEET[2].replace(",on,", ",on;,")],  # one args
        FLEET[:2],
    ]
    found = {fingerprint(write_file, rows) for rows in changed}
    assert base not in found and len(found) == len(changed)
    assert fingerprint(write_file, FLEET, name="other-name.csv") != base  # the job's name


def test_fingerprint_is_the_sum_of_the_command_fingerprints(write_file: WriteFile) -> None:
    path = write_file(
        "j.yaml",
        "allow_duplicates: true\n"
        + yaml_job(
            f"  - '{I1}'\n  - imei: '{I2}'\n    valid_time: +1h\n    retry: 0\n  - '{I1}'\n"
        ),
    )
    result, _ = check(path)
    sent = commands(path)
    assert result.fingerprint == job_fingerprint("test", sent)
    total = sum(command_fingerprint(c) for c in sent)
    assert result.fingerprint == job_fingerprint("test", total)
    assert len({command_fingerprint(c) for c in sent}) == 3  # the two copies differ by occurrence
    assert len(result.fingerprint) == 32 and int(result.fingerprint, 16) >= 0


def test_command_fingerprint_covers_every_field_sent() -> None:
    base = Command(I1, 1, 0, 1, parse_timespec("+1d"), key=command_key(I1, 1, 0, 1, None))
    others = [
        replace(base, args="a", key=command_key(I1, 1, 0, 1, "a")),
        replace(base, res_id=2, key=command_key(I1, 1, 0, 2, None)),
        replace(base, occurrence=1, key=command_key(I1, 1, 0, 1, None, 1)),
        replace(base, imei=I2, key=command_key(I2, 1, 0, 1, None)),
        replace(base, expired_time=parse_timespec("+2d")),
        replace(base, valid_time=parse_timespec("+1h")),
        replace(base, retry=0),
        replace(base, timeout=30),
        replace(base, trigger_msg=1),
    ]
    parts = {command_fingerprint(c) for c in others}
    assert command_fingerprint(base) not in parts and len(parts) == len(others)
    assert command_fingerprint(replace(base, source="x.csv", line=9)) == command_fingerprint(base)


# --- targets_csv -----------------------------------------------------------------------------


def test_targets_csv_is_relative_to_the_job_file(
    write_file: WriteFile, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_file("jobs/fleet/devices.csv", f"imei,args,retry\n{I1},,\n{I2},special,5\n")
    write_file(
        "jobs/push.yaml",
        yaml_job(
            "", "obj_id: 3\n  obj_inst_id: 0\n  res_id: 4\n  args: std\n  expired_time: +1d"
        ).replace("targets:\n", "targets_csv: fleet/devices.csv\n"),
    )
    monkeypatch.chdir(tmp_path)
    job = load_job("jobs/push.yaml")
    first, second = job.commands()
    assert (first.args, first.retry, first.line) == ("std", 3, 2)
    assert first.source == os.path.join("jobs", "fleet", "devices.csv")
    assert (second.args, second.retry, second.line) == ("special", 5, 3)


def test_targets_and_targets_csv_together_share_duplicate_detection(write_file: WriteFile) -> None:
    write_file("d.csv", f"imei\n{I2}\n{I1}\n")
    path = write_file("j.yaml", yaml_job(f"  - '{I1}'\n") + "targets_csv: d.csv\n")
    result, problems = check(path)
    csv_path = path.parent / "d.csv"
    assert problems == [
        f"{csv_path}:3: imei: the same command (imei, obj_id, obj_inst_id, res_id, args) as "
        f"{path}:8; set allow_duplicates: true to send it again"
    ]
    assert (result.commands, result.devices) == (2, 2)


def test_targets_csv_missing_column_without_default(write_file: WriteFile) -> None:
    write_file("d.csv", f"imei,obj_id\n{I1},1\n")
    path = write_file(
        "j.yaml", "defaults:\n  obj_inst_id: 0\n  expired_time: +1d\ntargets_csv: d.csv\n"
    )
    _, problems = check(path)
    assert problems == [f"{path.parent / 'd.csv'}:1: res_id: no such column, and no default"]


def test_missing_targets_csv_cites_the_job_line(write_file: WriteFile) -> None:
    path = write_file("j.yaml", "job: x\ntargets_csv: nowhere.csv\n")
    with pytest.raises(JobFileError, match=r"j\.yaml:2: targets_csv: no such file: .*nowhere\.csv"):
        load_job(path)


# --- CSV jobs --------------------------------------------------------------------------------


def test_csv_job_reads_every_field(write_file: WriteFile) -> None:
    path = write_file(
        "c.csv",
        HEADER
        + f'{I1},3200,0,5505,"a,b ""c""",+15m,+1d,0,40,1\n'
        + f"{I2},3200,1,5505,,,2030-01-02T00:00:00,,,\n",
    )
    first, second = commands(path)
    assert (
        first.imei,
        first.obj_id,
        first.args,
        first.retry,
        first.timeout,
        first.trigger_msg,
    ) == (I1, 3200, 'a,b "c"', 0, 40, 1)
    assert first.valid_time is not None and first.valid_time.text == "+15m"
    assert (second.args, second.valid_time, second.retry, second.timeout, second.trigger_msg) == (
        None,
        None,
        3,
        25,
        7,
    )
    assert (first.source, first.line, second.line) == (str(path), 2, 3)


def test_csv_from_a_spreadsheet_bom_crlf_quoted_newlines(write_file: WriteFile) -> None:
    content = (
        "\ufeffIMEI , obj_id,obj_inst_id,res_id,args,expired_time,\r\n"
        f'{I1},3,0,4,"line one\r\nline two\r\nline three",+1d,\r\n'
        "\r\n"
        f"{I2},3,0,4,x,+1d,\r\n"
        f"{I3},3,0,4,y,tomorrow,\r\n"
        ",,,,,,\r\n"
    )
    path = write_file("sheet.csv", content)
    result, problems = check(path)
    assert problems == [
        f"{path}:7: expired_time: 'tomorrow' is not a time: write YYYY-MM-DDTHH:MM:SS "
        "(UTC+8), one with a zone such as Z or +08:00, or a relative time such as +30m, +6h, +2d"
    ]
    cmds = [c for c in load_job(path).scan(at=AT) if isinstance(c, Command)]
    assert [(c.imei, c.line) for c in cmds] == [(I1, 2), (I2, 6)]
    assert cmds[0].args == "line one\r\nline two\r\nline three"
    assert result.commands == 2


def test_csv_ragged_rows_are_problems_for_their_line(write_file: WriteFile) -> None:
    path = write_file(
        "c.csv",
        "imei,obj_id,obj_inst_id,res_id,expired_time\n"
        f"{I1},3,0,4,+1d,extra\n"
        f"{I2},1,0\n"
        f"{I3},3,0,4,+1d,,\n"  # trailing empty cells are tolerated
        f"{I4},3,0,4,+1d\n",
    )
    result, problems = check(path)
    assert problems == [
        f"{path}:2: row: has 6 fields, the header has 5",
        f"{path}:3: row: has 3 fields, the header has 5",
    ]
    assert (result.commands, result.errors) == (2, 2)


def test_csv_missing_required_column_is_reported_once(write_file: WriteFile) -> None:
    path = write_file("c.csv", f"imei,obj_id,obj_inst_id,res_id\n{I1},3,0,4\n{I2},3,0,4\n")
    result, problems = check(path)
    assert problems == [f"{path}:1: expired_time: no such column"]
    assert result.commands == 0


def test_csv_unknown_and_repeated_columns(write_file: WriteFile) -> None:
    path = write_file(
        "c.csv", f"imei,obj_id,obj_inst_id,res_id,expired_time,retyr,res_id\n{I1},3,0,4,+1d,2,1\n"
    )
    _, problems = check(path)
    assert problems == [
        f"{path}:1: retyr: unknown column (did you mean retry?)",
        f"{path}:1: res_id: column given twice",
    ]


def test_csv_header_only_is_an_error(write_file: WriteFile) -> None:
    path = write_file("c.csv", HEADER)
    result, problems = check(path)
    assert problems == [f"{path}:1: no rows after the header row"]
    assert not result.ok


def test_csv_duplicates_across_batches_cite_the_first_line(write_file: WriteFile) -> None:
    bodies = [f"86451203{i:06d}" for i in range(5000)]
    rows = [f"{b}{luhn_check_digit(b)},3,0,4,+1d" for b in bodies]
    rows.append(rows[10])
    path = write_file(
        "c.csv", "imei,obj_id,obj_inst_id,res_id,expired_time\n" + "\n".join(rows) + "\n"
    )
    result, problems = check(path)
    assert problems == [
        f"{path}:5002: imei: the same command (imei, obj_id, obj_inst_id, res_id, args) as line 12;"
        " remove the repeat, or list this CSV as the targets_csv of a YAML job with"
        " allow_duplicates: true to send it again"
    ]
    assert (result.commands, result.devices) == (5000, 5000)


def test_seen_keys_counts_occurrences_across_batches() -> None:
    with SeenKeys() as seen:
        assert seen.add([(1, 10, 7), (2, 11, 7), (3, 12, 8)]) is None
        assert seen.add([(4, 13, 9), (2, 14, 7), (2, 15, 7), (1, 16, 7)]) == [
            (0, 13),
            (1, 11),
            (2, 11),
            (1, 10),
        ]
        assert seen.groups() == 3


# --- files that are not job files --------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("e.yaml", "", r"e\.yaml:1: the file is empty"),
        ("e.yaml", "# only a comment\n", r"e\.yaml:1: the file is empty"),
        ("e.csv", "", r"e\.csv:1: the file is empty"),
        ("e.csv", "\r\n\r\n", r"e\.csv:1: the file is empty"),
        ("s.yaml", "job: x\ntargets: [\n  - a: b\n", r"s\.yaml:3: not valid YAML"),
        ("t.yaml", "- a\n- b\n", r"t\.yaml:1: must be a mapping"),
        ("n.yaml", "job: x\n", r"n\.yaml:1: targets: no targets"),
        (
            "d.yaml",
            "job: x\ndefaults: [1]\ntargets: []\n",
            r"d\.yaml:2: defaults: must be a mapping",
        ),
        ("g.yaml", b"\x00\x01\xff\xfe garbage", r"g\.yaml:1: is not UTF-8 text"),
        ("c.yaml", "job: x\x07\n", r"c\.yaml:1: not valid YAML: character U\+0007 is not allowed"),
        ("g.csv", b"imei\n" + b"\x89PNG\r\n\x1a\n\x00\x00", r"g\.csv:2: is not UTF-8 text"),
        ("h.csv", "device,obj_id\n1,2\n", r"h\.csv:1: imei: no imei column in the header row"),
        (
            "h.csv",
            "imei;obj_id\n1;2\n",
            r"no imei column in the header row \(fields must be separated by commas\)",
        ),
        ("q.csv", 'imei\n"unterminated\n', r"q\.csv:2: not valid CSV: unexpected end of data"),
        ("job.txt", "imei\n", r"job\.txt: not a job file: name it \.yaml, \.yml or \.csv"),
        ("deep.yaml", "a: " + "[" * 5000 + "]" * 5000 + "\n", r"deep\.yaml"),
    ],
)
def test_unreadable_files_give_one_line_errors(
    write_file: WriteFile, name: str, content: str | bytes, message: str
) -> None:
    path = write_file(name, content)
    with pytest.raises(JobFileError, match=message) as err:
        job = load_job(path)
        validate_job(job, at=AT)
    assert "\n" not in str(err.value)


def test_unterminated_quote_in_csv_is_not_a_crash(write_file: WriteFile) -> None:
    path = write_file("q.csv", f'imei,obj_id,obj_inst_id,res_id,expired_time\n{I1},3,0,4,"+1d\n')
    with pytest.raises(JobFileError, match=r"q\.csv:2: not valid CSV: unexpected end of data"):
        check(path)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(JobFileError, match=r"nothing\.yaml: no such file"):
        load_job(tmp_path / "nothing.yaml")
    (tmp_path / "dir.csv").mkdir()
    with pytest.raises(JobFileError, match=r"dir\.csv: is a directory"):
        load_job(tmp_path / "dir.csv")


def test_yaml_alias_bomb_is_refused(write_file: WriteFile) -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
    bomb += "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\ntargets: [*c]\n"
    path = write_file("bomb.yaml", bomb)
    with pytest.raises(
        JobFileError, match=r"bomb\.yaml:2: YAML aliases \(\*name\) are not allowed"
    ):
        load_job(path)


@pytest.mark.parametrize("name", ["long.csv", "long.yaml"])
def test_ten_megabyte_line_is_refused(write_file: WriteFile, name: str) -> None:
    path = write_file(name, "imei\n" + "9" * 10_000_000 + "\n")
    with pytest.raises(
        JobFileError, match=r":2: (line|not valid CSV: a line or field) is longer than"
    ):
        validate_job(load_job(path), at=AT)


def test_huge_csv_field_is_refused(write_file: WriteFile) -> None:
    path = write_file("f.csv", 'imei,args\n1,"' + "x\n" * 100_000 + '"\n')
    with pytest.raises(
        JobFileError,
        match=r"f\.csv:2: not valid CSV: a line or field is longer than 131072 characters",
    ):
        validate_job(load_job(path), at=AT)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.one_of(st.binary(max_size=300), st.text(max_size=300).map(str.encode)))
def test_arbitrary_bytes_only_ever_raise_job_file_error(write_file: WriteFile, data: bytes) -> None:
    for name in ("fuzz.yaml", "fuzz.csv"):
        path = write_file(name, data)
        try:
            validate_job(load_job(path), at=AT)
        except JobFileError as exc:
            assert "\n" not in str(exc)


_YAMLISH = st.lists(
    st.sampled_from(
        [
            "job: x",
            "defaults:",
            "  obj_id: 1",
            "  expired_time: +1d",
            "targets:",
            f"  - imei: {I1}",
            "    retry: 99",
            "  - [a]",
            "targets_csv: x.csv",
            "allow_duplicates: maybe",
            "  - &a x",
            "  - *a",
            "    trigger: [register, foo]",
            "  -",
            ": :",
            "\t",
            "imei,obj_id",
            f"{I1},1",
            '"',
            "- - -",
            '    args: "\\ud800"',
            '    "\\udfff": x',
            '    args: "a\\0b"',
            "    res_id:",
            "    valid_time: '2001-01-01T00:00:00'",
            "  imei: 8.65820E+14",
            "ignore_columns: [note, ~, [x]]",
            "sep=;",
            "sep=,",
        ]
    ),
    max_size=12,
).map(lambda lines: "\n".join(lines).encode())


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=_YAMLISH)
def test_job_like_text_only_ever_raises_job_file_error(write_file: WriteFile, data: bytes) -> None:
    for name in ("fuzz.yaml", "fuzz.csv"):
        path = write_file(name, data)
        try:
            job = load_job(path)
            validate_job(job, at=AT)
            for item in job.scan(at=AT, past_times="warn"):
                str(item).encode("utf-8")  # every problem can be printed
            list(job.commands())
        except JobFileError as exc:
            assert "\n" not in str(exc)
            str(exc).encode("utf-8")


# --- the example jobs -------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["example.yaml", "small.yaml", "config-push.csv"])
def test_example_jobs_validate_cleanly(name: str) -> None:
    result, problems = check(ROOT / "jobs" / name, at=datetime.now(BEIJING))
    assert problems == []
    assert result.ok and result.commands > 0 and result.warnings == 0


def test_example_fleet_has_3000_devices() -> None:
    result, _ = check(ROOT / "jobs" / "example.yaml")
    assert (result.commands, result.devices) == (3000, 3000)


def test_gen_fleet_writes_a_valid_deterministic_job(tmp_path: Path) -> None:
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    for path in (a, b):
        subprocess.run(
            [sys.executable, "-m", "benchmarks.gen_fleet", str(path), "300"], cwd=ROOT, check=True
        )
    assert a.read_bytes() == b.read_bytes()
    result, problems = check(a)
    assert problems == [] and (result.commands, result.devices) == (300, 300)


def test_job_is_a_frozen_header(write_file: WriteFile) -> None:
    job = load_job(write_file("j.yaml", yaml_job(f"  - '{I1}'\n")))
    assert isinstance(job, Job)
    with pytest.raises(AttributeError):
        job.name = "other"  # type: ignore[misc]

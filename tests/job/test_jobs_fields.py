"""The fields of a job: unknown ones, triggers, repeated and non-scalar values, IMEI checks,
duplicate commands and their keys, how problems read and are given."""

from __future__ import annotations

import pytest

from dispatcher.errors import JobFileError
from dispatcher.job.model import (
    Problem,
    command_key,
    load_job,
)
from dispatcher.job.values import luhn_check_digit, luhn_ok
from tests.support.files import WriteFile
from tests.support.jobs import (
    AT,
    I1,
    I2,
    check,
    commands,
    yaml_job,
)

BAD_LUHN = "490154203237519"


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

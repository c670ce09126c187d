"""Job input that is damaged or odd: text that cannot be sent, YAML written the wrong way, spaces
around CSV cells; a clear Problem for each, never a crash."""

from __future__ import annotations

import pytest

from dispatcher.errors import JobFileError
from dispatcher.job.model import Problem, load_job, validate_job
from tests.support.files import WriteFile
from tests.support.jobs import AT, CSV_HEAD, DEFAULTS, I1, I2, check, commands, yaml_job


@pytest.mark.parametrize("field", ["args", "imei", "obj_id", "expired_time", "trigger"])
def test_lone_surrogate_in_any_field_is_a_problem_naming_it(
    write_file: WriteFile, field: str
) -> None:
    body = f"  - imei: '{I1}'\n    {field}: \"a\\ud800b\"\n"
    if field == "imei":
        body = '  - imei: "\\ud800"\n'
    path = write_file("j.yaml", yaml_job(body))
    result, problems = check(path)
    assert result.commands == 0
    assert any(f":{8 if field == 'imei' else 9}: {field}: holds U+D800" in p for p in problems)
    for problem in problems:
        problem.encode("utf-8")  # every message can be printed
    with pytest.raises(JobFileError, match=f"{field}: holds U\\+D800"):
        commands(path)


def test_lone_surrogate_in_a_default_is_reported_once(write_file: WriteFile) -> None:
    path = write_file(
        "j.yaml", yaml_job(f"  - '{I1}'\n  - '{I2}'\n", DEFAULTS + '\n  args: "\\udfff"')
    )
    result, problems = check(path)
    assert len(problems) == 1 and ":7: args: holds U+DFFF" in problems[0]
    assert result.commands == 0


def test_lone_surrogate_in_a_name_or_key_is_never_printed_raw(write_file: WriteFile) -> None:
    text = yaml_job(f"  - imei: '{I1}'\n    \"\\ud800\": 1\n").replace(
        "job: test", 'job: "x\\ud800"'
    )
    path = write_file("j.yaml", text)
    result, problems = check(path)
    assert problems[0].startswith(f"{path}:1: job: holds U+D800, half of a UTF-16 surrogate pair")
    assert problems[1] == f"{path}:9: '\\ud800': unknown field"
    assert load_job(path).name == "j" and result.errors == 2


@pytest.mark.parametrize(("char", "code"), [("\\0", "U+0000"), ("\\x1b", "U+001B")])
def test_control_characters_in_args_are_refused(
    write_file: WriteFile, char: str, code: str
) -> None:
    path = write_file("j.yaml", yaml_job(f"  - imei: '{I1}'\n    args: \"on{char}\"\n"))
    result, problems = check(path)
    assert problems == [
        f"{path}:9: args: holds the control character {code} at position 3: remove it"
    ]
    assert result.commands == 0


def test_nul_in_csv_args_is_refused(write_file: WriteFile) -> None:
    path = write_file("c.csv", f"{CSV_HEAD}{I1},3,0,4,a\x00b,+1d\n")
    _, problems = check(path)
    assert problems == [
        f"{path}:2: args: holds the control character U+0000 at position 2: remove it"
    ]


def test_tabs_and_line_breaks_in_args_are_text(write_file: WriteFile) -> None:
    path = write_file("c.csv", f'{CSV_HEAD}{I1},3,0,4,"a\tb\r\nc",+1d\n')
    assert check(path)[1] == []
    assert commands(path)[0].args == "a\tb\r\nc"


def test_targets_written_as_a_mapping_are_an_error_even_with_a_csv(write_file: WriteFile) -> None:
    write_file("d.csv", f"imei\n{I2}\n")
    text = f"job: x\ndefaults:\n  {DEFAULTS}\ntargets:\n  imei: '{I1}'\ntargets_csv: d.csv\n"
    path = write_file("j.yaml", text)
    result, problems = check(path)
    assert problems == [
        f"{path}:8: targets: must be a list, not a mapping: start each target with '- ' "
        "(- imei: ...)"
    ]
    assert (result.errors, result.commands) == (1, 1)


def test_targets_written_as_a_mapping_without_a_csv_is_an_error(write_file: WriteFile) -> None:
    path = write_file("j.yaml", f"job: x\ndefaults:\n  {DEFAULTS}\ntargets:\n  imei: '{I1}'\n")
    result, problems = check(path)
    assert problems == [
        f"{path}:8: targets: must be a list, not a mapping: start each target with '- ' "
        "(- imei: ...)"
    ]
    assert not result.ok


@pytest.mark.parametrize("null", [" null", "", " ~"])
def test_null_target_field_is_an_error_not_the_default(write_file: WriteFile, null: str) -> None:
    defaults = DEFAULTS + "\n  args: std"
    path = write_file("j.yaml", yaml_job(f"  - imei: '{I1}'\n    args:{null}\n", defaults))
    result, problems = check(path)
    assert problems == [
        f"{path}:10: args: is empty (null): give a value or leave the field out to use the default"
    ]
    assert result.commands == 0


def test_null_required_target_field_is_reported_once(write_file: WriteFile) -> None:
    path = write_file(
        "j.yaml",
        yaml_job(
            f"  - imei: '{I1}'\n    res_id: null\n",
            "obj_id: 3\n  obj_inst_id: 0\n  expired_time: +2d",
        ),
    )
    _, problems = check(path)
    assert problems == [
        f"{path}:8: res_id: is empty (null): give a value or leave the field out to use the default"
    ]


def test_null_default_is_an_error_reported_once(write_file: WriteFile) -> None:
    path = write_file(
        "j.yaml",
        yaml_job(
            f"  - '{I1}'\n  - '{I2}'\n",
            "obj_id: 3\n  obj_inst_id: 0\n  res_id: ~\n  expired_time: +2d",
        ),
    )
    result, problems = check(path)
    assert problems == [
        f"{path}:5: res_id: is empty (null): give a value or leave the field out to use the default"
    ]
    assert result.commands == 0


def test_null_default_with_a_target_csv_is_reported_once(write_file: WriteFile) -> None:
    write_file("d.csv", f"imei\n{I1}\n{I2}\n")
    path = write_file(
        "j.yaml",
        "defaults:\n  obj_id: 3\n  obj_inst_id: 0\n  res_id: 4\n  retry:\n  expired_time: +2d\n"
        "targets_csv: d.csv\n",
    )
    result, problems = check(path)
    assert problems == [
        f"{path}:5: retry: is empty (null): give a value or leave the field out to use the default"
    ]
    assert result.commands == 0


def test_spaces_around_csv_args_are_a_warning_and_kept(write_file: WriteFile) -> None:
    path = write_file("c.csv", f"{CSV_HEAD}{I1}, 3 ,0,4, on ,+1d\n{I2},3,0,4,on,+1d\n")
    result, problems = check(path)
    assert problems == [
        f"warning: {path}:2: args: starts or ends with spaces: they are sent as written"
    ]
    assert (result.commands, result.warnings, result.ok) == (2, 1, True)
    assert [c.args for c in commands(path)] == [" on ", "on"]


def test_spaces_around_csv_args_are_an_error_when_strict(write_file: WriteFile) -> None:
    path = write_file("c.csv", f"{CSV_HEAD}{I1},3,0,4, on,+1d\n")
    found: list[Problem] = []
    result = validate_job(load_job(path), at=AT, strict=True, on_problem=found.append)
    assert [(p.field, p.warning) for p in found] == [("args", False)]
    assert (result.commands, result.errors) == (0, 1)


def test_spaces_in_yaml_args_are_not_pointed_out(write_file: WriteFile) -> None:
    path = write_file("j.yaml", yaml_job(f"  - imei: '{I1}'\n    args: ' on'\n"))
    assert check(path)[1] == []

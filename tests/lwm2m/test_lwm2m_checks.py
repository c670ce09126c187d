"""What the registry tells a person: `dispatcher objects`, and validation that knows LwM2M."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from dispatcher.job.model import Problem, load_job, validate_job
from dispatcher.job.resources import SHOWN
from dispatcher.times import BEIJING
from tests.support.cli import invoke
from tests.support.files import WriteFile

I1, I2, I3, I4 = "490154203237518", "864512030000003", "358476090000076", "867231050000002"
AT = "2030-01-01T12:00:00"
HEADER = "imei,obj_id,obj_inst_id,res_id,expired_time\n"
LUHN_OK = [I1, I2, I3, I4]


def csv_job(rows: list[tuple[str, int, int, int]]) -> str:
    return HEADER + "".join(f"{imei},{o},{i},{r},2030-01-03T00:00:00\n" for imei, o, i, r in rows)


def problems_of(path: Path, strict: bool = False) -> tuple[list[Problem], int, int, int]:
    found: list[Problem] = []
    at = datetime(2030, 1, 1, 12, tzinfo=BEIJING)
    v = validate_job(load_job(path), at=at, strict=strict, on_problem=found.append)
    return found, v.commands, v.warnings, v.errors


# -- dispatcher objects --------------------------------------------------------------------


def test_objects_shows_an_object_and_its_resources() -> None:
    result = invoke("objects", "3311")
    assert result.exit_code == 0, result.output
    assert "3311 Light Control (multiple instances)" in result.output
    [row] = [line for line in result.output.splitlines() if "5850" in line]
    assert "On/Off" in row and "RW" in row and "Boolean" in row


def test_objects_find_lists_the_matching_objects() -> None:
    result = invoke("objects", "--find", "temperature")
    assert result.exit_code == 0, result.output
    assert "3303" in result.output and "Temperature" in result.output
    assert "Light Control" not in result.output


def test_an_unknown_object_is_named_and_alone_exits_1() -> None:
    alone = invoke("objects", "33000")
    assert alone.exit_code == 1
    assert "object 33000 is not in the registry" in alone.output
    with_known = invoke("objects", "33000", "5")
    assert with_known.exit_code == 0
    assert "not in the registry" in with_known.output and "Firmware Update" in with_known.output
    nothing = invoke("objects", "--find", "no such object name")
    assert nothing.exit_code == 1 and "no object of the registry" in nothing.output


def test_objects_with_no_argument_lists_every_object_with_its_resource_count() -> None:
    result = invoke("objects")
    assert result.exit_code == 0, result.output
    [row] = [line for line in result.output.splitlines() if " Firmware Update " in line]
    assert row.split("│")[1].strip() == "5" and row.split("│")[4].strip() == "14"
    assert sum(1 for line in result.output.splitlines() if line.startswith("│")) > 300


def test_registry_text_is_never_read_as_markup() -> None:
    # "[/100]"-like text would be a closing tag to rich; the units of 3311/5851 are "/100".
    result = invoke("objects", "3311")
    [row] = [line for line in result.output.splitlines() if "5851" in line]
    assert "/100" in row
    lookalike = invoke("objects", "--find", "[bold]")
    assert lookalike.exit_code == 1 and "'[bold]'" in lookalike.output


# -- validation ----------------------------------------------------------------------------


def test_validate_names_each_distinct_resource_in_its_summary(write_file: WriteFile) -> None:
    rows = [(I1, 5, 0, 2), (I2, 5, 0, 2), (I3, 3303, 0, 5605), (I4, 33000, 0, 1)]
    path = write_file("j.csv", csv_job(rows))
    result = invoke("validate", path, "--at", AT)
    assert result.exit_code == 0, result.output
    assert (
        "  resources: 5/0/2 Firmware Update · Update (E), 3303/0/5605 Temperature · Reset Min and"
        " Max Measured Values (E), 33000/0/1 (not in the registry)\n"
    ) in result.output
    assert "0 warnings" in result.output


def test_the_summary_lists_the_first_ten_resources_then_how_many_more(
    write_file: WriteFile,
) -> None:
    rows = [(I1, 33000, i, 1) for i in range(14)]
    path = write_file("j.csv", csv_job(rows))
    result = invoke("validate", path, "--at", AT)
    assert "33000/9/1 (not in the registry), and 4 more\n" in result.output
    assert "33000/10/1" not in result.output


def test_executing_a_resource_that_is_not_executable_is_a_warning_at_its_line(
    write_file: WriteFile,
) -> None:
    path = write_file("j.csv", csv_job([(I1, 5, 0, 2), (I2, 3203, 0, 5750)]))
    found, commands, warnings, errors = problems_of(path)
    assert (commands, warnings, errors) == (2, 1, 0)
    assert [str(p) for p in found] == [
        f"{path}:3: res_id: 3203/0/5750 is Analog Output · Application Type (RW): not"
        " executable; executing it makes the device answer METHOD_NOT_ALLOWED"
    ]
    assert found[0].warning


def test_a_non_executable_resource_is_reported_a_few_times_then_once_for_the_rest(
    write_file: WriteFile,
) -> None:
    rows = [(imei, 3311, n, 5850) for n in range(4) for imei in LUHN_OK] + [(I1, 5, 0, 2)]
    path = write_file("j.csv", csv_job(rows))
    found, commands, warnings, _ = problems_of(path)
    assert commands == 17 and warnings == SHOWN + 1
    assert [p.line for p in found] == [2, 3, 4, SHOWN + 2]
    assert found[-1].message == (
        "3311/0/5850 is Light Control · On/Off (RW): not executable; 13 more commands execute"
        " it, from here to line 17"
    )


def test_with_strict_a_non_executable_resource_is_an_error_and_not_a_command(
    write_file: WriteFile,
) -> None:
    path = write_file("j.csv", csv_job([(I1, 5, 0, 2), (I2, 3311, 0, 5850)]))
    found, commands, warnings, errors = problems_of(path, strict=True)
    assert (commands, warnings, errors) == (1, 0, 1)
    assert not found[0].warning
    result = invoke("validate", "--strict", path, "--at", AT)
    assert result.exit_code != 0 and "INVALID: 1 error(s)" in result.output


def test_ids_not_in_the_registry_are_fine(write_file: WriteFile) -> None:
    path = write_file("j.csv", csv_job([(I1, 33000, 0, 1), (I2, 5, 0, 99)]))
    found, commands, warnings, errors = problems_of(path)
    assert (found, commands, warnings, errors) == ([], 2, 0, 0)


def test_a_yaml_job_reports_at_the_target_entry(write_file: WriteFile) -> None:
    path = write_file(
        "j.yaml",
        "job: lights\ndefaults:\n  obj_id: 3311\n  obj_inst_id: 0\n  res_id: 5850\n"
        f"  args: 'off'\n  expired_time: +2d\ntargets:\n  - imei: '{I1}'\n  - imei: '{I2}'\n"
        "    res_id: 5853\n",  # not in the registry: fine
    )
    found, commands, warnings, _ = problems_of(path)
    assert [(p.line, p.field) for p in found] == [(9, "res_id")]
    assert (commands, warnings) == (2, 1)

"""``dispatcher validate``, in-process and as a real process: summaries, every problem with its file
and line, --at, --strict, unreadable files; GBK CSVs and .xlsx sheets, --encoding and
--ignore-column."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.cli import (
    dispatcher_process,
    invoke,
    no_traceback,
)
from tests.support.job_texts import (
    AT,
    BAD_CSV,
    BAD_CSV_LINES,
    BAD_LUHN,
    BAD_YAML,
    BAD_YAML_LINES,
    GOOD_CSV,
    GOOD_YAML,
    I1,
    I2,
    I3,
    REBOOT,
    RESET,
    ROOT,
    WriteFile,
)
from tests.support.sheets import write_sheet

# --- validate ----------------------------------------------------------------------------------


def test_validate_good_yaml_prints_the_summary(write_file: WriteFile) -> None:
    path = write_file("good.yaml", GOOD_YAML)
    result = invoke("validate", path, "--at", AT)
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [
        f"{path}: valid; 3 valid commands, 3 devices, "
        "window 2030-01-01T12:00:00 .. 2030-01-03T12:00:00 (UTC+8), 0 warnings",
        REBOOT,
    ]
    assert result.stderr == ""


def test_validate_good_csv_prints_the_summary(write_file: WriteFile) -> None:
    path = write_file("good.csv", "\ufeff" + GOOD_CSV)
    result = invoke("validate", path, "--at", AT)
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [
        f"{path}: valid; 2 valid commands, 2 devices, "
        "window 2030-01-01T12:00:00 .. 2030-01-03T00:00:00 (UTC+8), 0 warnings",
        RESET,
    ]


def test_validate_without_at_checks_against_now(write_file: WriteFile) -> None:
    path = write_file("good.yaml", GOOD_YAML)
    result = invoke("validate", path)
    assert result.exit_code == 0
    assert result.stdout.startswith(f"{path}: valid; 3 valid commands, 3 devices, window ")


def test_validate_counts_distinct_devices(write_file: WriteFile) -> None:
    path = write_file(
        "two-per-device.csv",
        f"imei,obj_id,obj_inst_id,res_id,args,expired_time\n"
        f"{I1},3,0,4,a,+1d\n{I1},3,0,4,b,+1d\n{I2},3,0,4,a,+1d\n",
    )
    result = invoke("validate", path, "--at", AT)
    assert result.exit_code == 0
    assert "; 3 valid commands, 2 devices, " in result.stdout


def test_validate_bad_yaml_prints_every_problem_with_its_line(
    write_file: WriteFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_file("bad.yaml", BAD_YAML)
    monkeypatch.chdir(path.parent)
    result = invoke("validate", "bad.yaml", "--at", AT)
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[:-2] == BAD_YAML_LINES
    assert lines[-2].startswith("bad.yaml: INVALID: 4 error(s); ")
    assert lines[-1] == REBOOT


def test_validate_missing_field_cites_the_target_entry(
    write_file: WriteFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_file(
        "missing.yaml",
        "defaults:\n"
        "  obj_id: 3\n"
        "  obj_inst_id: 0\n"
        "  expired_time: +2d\n"
        "targets:\n"
        f'  - imei: "{I1}"\n'
        "    res_id: 4\n"
        f'  - imei: "{I2}"\n',
    )
    monkeypatch.chdir(write_file("x", "").parent)
    result = invoke("validate", "missing.yaml", "--at", AT)
    assert result.exit_code == 1
    assert result.stdout.splitlines()[0] == "missing.yaml:8: res_id: is required"


def test_validate_bad_csv_prints_every_problem_with_its_file_line(
    write_file: WriteFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_file("bad.csv", BAD_CSV)
    monkeypatch.chdir(path.parent)
    result = invoke("validate", "bad.csv", "--at", AT)
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[:-2] == BAD_CSV_LINES
    assert lines[-2].startswith("bad.csv: INVALID: 3 error(s); ")
    assert lines[-1] == REBOOT


def test_validate_several_files_reports_each_and_fails_if_any_is_invalid(
    write_file: WriteFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_file("good.yaml", GOOD_YAML)
    write_file("bad.csv", BAD_CSV)
    write_file("good.csv", GOOD_CSV)
    monkeypatch.chdir(write_file("x", "").parent)
    result = invoke("validate", "good.yaml", "bad.csv", "good.csv", "--at", AT)
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[0].startswith("good.yaml: valid; 3 valid commands")
    assert lines[1] == REBOOT
    assert lines[2:5] == BAD_CSV_LINES
    assert lines[5].startswith("bad.csv: INVALID: 3 error(s)")
    assert lines[6] == REBOOT
    assert lines[7].startswith("good.csv: valid; 2 valid commands")
    assert lines[8] == RESET
    assert len(lines) == 9


def test_validate_several_good_files_succeeds(write_file: WriteFile) -> None:
    yaml_path, csv_path = write_file("good.yaml", GOOD_YAML), write_file("good.csv", GOOD_CSV)
    result = invoke("validate", yaml_path, csv_path, "--at", AT)
    assert result.exit_code == 0
    assert [line.split(": ")[1] for line in result.stdout.splitlines()] == [
        "valid; 3 valid commands, 3 devices,"
        " window 2030-01-01T12:00:00 .. 2030-01-03T12:00:00 (UTC+8), 0 warnings",
        REBOOT.split(": ")[1],
        "valid; 2 valid commands, 2 devices,"
        " window 2030-01-01T12:00:00 .. 2030-01-03T00:00:00 (UTC+8), 0 warnings",
        RESET.split(": ")[1],
    ]


def test_validate_warning_passes_and_strict_makes_it_an_error(
    write_file: WriteFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_file("warn.csv", f"imei,obj_id,obj_inst_id,res_id,expired_time\n{BAD_LUHN},3,0,4,+2d\n")
    monkeypatch.chdir(write_file("x", "").parent)
    problem = f"warn.csv:2: imei: check digit is wrong (Luhn: {I1}); is there a typo?"

    lenient = invoke("validate", "warn.csv", "--at", AT)
    assert lenient.exit_code == 0
    assert lenient.stdout.splitlines()[0] == problem + " (warning)"
    assert lenient.stdout.splitlines()[1].endswith(", 1 warning")
    assert ": valid; 1 valid command," in lenient.stdout

    strict = invoke("validate", "warn.csv", "--at", AT, "--strict")
    assert strict.exit_code == 1
    assert strict.stdout.splitlines()[0] == problem
    assert "INVALID: 1 error(s)" in strict.stdout


def test_validate_at_with_a_zone_is_converted_to_beijing_time(write_file: WriteFile) -> None:
    path = write_file("good.yaml", GOOD_YAML)
    result = invoke("validate", path, "--at", "2030-01-01T04:00:00Z")
    assert result.exit_code == 0
    assert "window 2030-01-01T12:00:00 .. 2030-01-03T12:00:00 (UTC+8)" in result.stdout


def test_validate_at_after_an_absolute_expiry_is_an_error(write_file: WriteFile) -> None:
    path = write_file("good.csv", GOOD_CSV)
    good = invoke("validate", path, "--at", AT)
    late = invoke("validate", path, "--at", "2030-01-03T00:00:01")
    assert good.exit_code == 0
    assert late.exit_code == 1
    assert f"{path}:2: expired_time: 2030-01-03T00:00:00 is in the past" in late.stdout


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        ("tomorrow", "Invalid value for --at: 'tomorrow' is not a time"),
        ("2030-13-01T00:00:00", "Invalid value for --at"),
        ("+1h", "Invalid value for --at: give an absolute time"),
    ],
)
def test_validate_at_that_is_not_an_absolute_time_is_a_usage_error(
    write_file: WriteFile, at: str, expected: str
) -> None:
    path = write_file("good.yaml", GOOD_YAML)
    result = invoke("validate", path, "--at", at)
    assert result.exit_code == 2
    assert expected in result.stderr
    assert result.stdout == ""


def test_validate_without_a_file_is_a_usage_error() -> None:
    result = invoke("validate")
    assert result.exit_code == 2
    assert "Missing argument 'JOBFILES...'" in result.stderr


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("nowhere.yaml", None, "error: {path}: no such file"),
        ("folder", "dir", "error: {path}: is a directory, not a job file"),
        ("garbage.yaml", b"\x00\xff\xfe\x81" * 64 + b"\n\x9c\x00", "error: {path}"),
        ("garbage.csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xd8", "error: {path}"),
        ("syntax.yaml", "targets: [\n  - imei: 1\n", "error: {path}:"),
    ],
)
def test_validate_unreadable_file_is_one_line_error_without_traceback(
    tmp_path: Path, name: str, content: str | bytes | None, expected: str
) -> None:
    path = tmp_path / name
    if content == "dir":
        path.mkdir()
    elif isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    elif isinstance(content, bytes):
        path.write_bytes(content)
    result = invoke("validate", path, "--at", AT)
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(errors) == 1
    assert errors[0].startswith(expected.format(path=path))
    assert no_traceback(result.stdout, result.stderr)


def test_validate_ragged_csv_row_is_one_problem_line(
    write_file: WriteFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_file("ragged.csv", f"imei,obj_id,obj_inst_id,res_id,expired_time\n{I1},3,0,4,+2d,x\n")
    monkeypatch.chdir(write_file("x", "").parent)
    result = invoke("validate", "ragged.csv", "--at", AT)
    assert result.exit_code == 1
    assert result.stdout.splitlines()[0] == "ragged.csv:2: row: has 6 fields, the header has 5"
    assert no_traceback(result.stdout, result.stderr)


def test_validate_in_a_process_gives_one_line_errors_and_carries_on(tmp_path: Path) -> None:
    (tmp_path / "folder").mkdir()
    (tmp_path / "garbage.yaml").write_bytes(bytes(range(256)) * 8)
    (tmp_path / "good.yaml").write_text(GOOD_YAML, encoding="utf-8")
    done = dispatcher_process(
        "validate", "nowhere.yaml", "folder", "garbage.yaml", "good.yaml", "--at", AT, cwd=tmp_path
    )
    assert done.code == 1
    assert no_traceback(done.stdout, done.stderr)
    errors = done.stderr.splitlines()
    assert len(errors) == 3
    assert errors[0] == "error: nowhere.yaml: no such file"
    assert errors[1] == "error: folder: is a directory, not a job file"
    assert errors[2].startswith("error: garbage.yaml")
    assert done.stdout.startswith("good.yaml: valid; 3 valid commands, 3 devices")


def test_validate_in_a_process_prints_exact_problem_lines(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(BAD_YAML, encoding="utf-8")
    (tmp_path / "bad.csv").write_text(BAD_CSV, encoding="utf-8")
    done = dispatcher_process("validate", "bad.yaml", "bad.csv", "--at", AT, cwd=tmp_path)
    assert done.code == 1
    lines = done.stdout.splitlines()
    assert lines[:4] == BAD_YAML_LINES
    assert lines[5] == REBOOT
    assert lines[6:9] == BAD_CSV_LINES
    assert done.stderr == ""


def test_validate_in_a_process_succeeds_on_the_example_jobs(tmp_path: Path) -> None:
    jobs = sorted(p for p in (ROOT / "jobs").iterdir() if p.suffix in (".yaml", ".csv"))
    jobs = [p for p in jobs if "broken" not in p.name and "fleet" not in p.name]
    assert jobs
    done = dispatcher_process("validate", *jobs, cwd=tmp_path)
    assert done.code == 0, done.stdout + done.stderr
    assert len(done.stdout.splitlines()) >= len(jobs)


# --- validate: spreadsheets as they come -------------------------------------------------------

SHEET_HEAD = ["imei", "obj_id", "obj_inst_id", "res_id", "args", "expired_time", "备注"]
GBK_CSV = (
    f"{','.join(SHEET_HEAD)}\r\n{I1},3303,0,5605,开灯,+1d,东门的表\r\n{I2},3303,0,5605,关,+1d,\r\n"
)


def test_validate_reads_a_gbk_csv_and_says_so(write_file: WriteFile) -> None:
    path = write_file("fleet.csv", GBK_CSV.replace("备注", "#备注").encode("gbk"))
    result = invoke("validate", path, "--at", AT)
    assert result.exit_code == 0, result.stdout
    assert result.stdout.splitlines() == [
        f"{path}: valid; 2 valid commands, 2 devices, "
        "window 2030-01-01T12:00:00 .. 2030-01-02T12:00:00 (UTC+8), 0 warnings",
        RESET,
        f"  {path}: read as GB18030 (not UTF-8)",
    ]


def test_validate_ignore_column_skips_a_column_of_a_csv_job(write_file: WriteFile) -> None:
    path = write_file("fleet.csv", GBK_CSV.encode("gbk"))
    refused = invoke("validate", path, "--at", AT)
    assert refused.exit_code == 1
    assert refused.stdout.splitlines()[0] == (
        f"{path}:1: 备注: unknown column (start its name with # or give --ignore-column 备注 to"
        " skip it)"
    )
    result = invoke("validate", path, "--at", AT, "--ignore-column", "备注")
    assert result.exit_code == 0, result.stdout


def test_validate_encoding_forces_one(write_file: WriteFile) -> None:
    path = write_file("fleet.csv", GBK_CSV.encode("gbk"))
    result = invoke("validate", path, "--at", AT, "--encoding", "gbk", "--ignore-column", "备注")
    assert result.exit_code == 0, result.stdout
    assert result.stdout.splitlines()[-1] == f"  {path}: read as GBK (as --encoding says)"
    wrong = invoke("validate", path, "--at", AT, "--encoding", "utf-8")
    assert wrong.exit_code == 1
    assert wrong.stderr.strip() == (
        f"error: {path}:1: does not decode as UTF-8, which --encoding names: is that its encoding?"
    )


def test_validate_unknown_encoding_is_a_usage_error_naming_the_flag(
    write_file: WriteFile,
) -> None:
    path = write_file("fleet.csv", GBK_CSV)
    result = invoke("validate", path, "--encoding", "gbkk")
    assert result.exit_code == 2
    assert "Invalid value for '--encoding': unknown encoding 'gbkk'" in result.stderr
    assert no_traceback(result.stderr)


def test_validate_xlsx_names_the_sheet_and_row_of_each_problem(tmp_path: Path) -> None:
    path = write_sheet(
        tmp_path / "fleet.xlsx",
        [
            SHEET_HEAD,
            [I1, 3303, 0, 5605, "开灯", "+1d", "东门的表"],
            [int(I2), 3303.0, 0, 5605, "关", "+1d", None],
            [86451203000000, 3303, 0, 5605, "关", "+1d", None],
            [I3, 3303, 0, 5605, "关", "someday", None],
        ],
        title="设备",
    )
    result = invoke("validate", path, "--at", AT, "--ignore-column", "备注")
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[0] == (
        f"{path}:设备!4: imei: is the number 86451203000000: a leading zero was lost; format the"
        " column as text (Format Cells > Text) and type the IMEIs in again"
    )
    assert lines[1].startswith(f"{path}:设备!5: expired_time: 'someday' is not a time: write")
    assert result.stdout.splitlines()[-1] == f"  {path}: sheet '设备'"

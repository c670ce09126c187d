"""Job files that passed through a spreadsheet or another encoding: damaged IMEIs and numbers,
separator lines, UTF-16 and GBK YAML files (a CSV in them is read: test_jobs_encoding.py),
duplicates and extra columns; a hint for each."""

from __future__ import annotations

import pytest

from dispatcher.errors import JobFileError
from dispatcher.job.model import load_job, validate_job
from dispatcher.job.values import luhn_check_digit
from tests.support.files import WriteFile
from tests.support.jobs import AT, CSV_HEAD, DEFAULTS, I1, check, commands, yaml_job

ZERO_LED = "012345670123459"  # a valid IMEI (Luhn) that starts with 0
SPREADSHEET = "a spreadsheet turned the column into numbers; format it as text and re-export"


@pytest.mark.parametrize(
    ("imei", "hint"),
    [
        ("8.65820E+14", f"(scientific notation: {SPREADSHEET})"),
        ("865820030000017.0", f"(a decimal part: {SPREADSHEET})"),
        (ZERO_LED[1:], f"(a lost leading zero? {ZERO_LED} passes the check digit; {SPREADSHEET})"),
        (ZERO_LED[1:] + ".0", f"(a lost leading zero? {ZERO_LED} passes the check digit;"),
    ],
)
def test_imei_damaged_by_a_spreadsheet_gets_a_hint(
    write_file: WriteFile, imei: str, hint: str
) -> None:
    path = write_file("c.csv", f"{CSV_HEAD}{imei},3,0,4,on,+1d\n")
    _, problems = check(path)
    assert len(problems) == 1
    assert problems[0].startswith(f"{path}:2: imei: must be 15 digits, got {imei!r} {hint}")


def test_fourteen_digits_failing_luhn_with_a_zero_get_no_zero_hint(write_file: WriteFile) -> None:
    body = "1234567012345"
    imei = body + str((luhn_check_digit("0" + body) + 1) % 10)  # "0" + imei fails Luhn
    path = write_file("c.csv", f"{CSV_HEAD}{imei},3,0,4,on,+1d\n")
    assert check(path)[1] == [f"{path}:2: imei: must be 15 digits, got {imei!r}"]


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("obj_id", "3303.0"),
        ("obj_inst_id", "0.0"),
        ("res_id", "5605.00"),
        ("retry", "3.0"),
        ("timeout", "30.0"),
        ("trigger_msg", "7.0"),
    ],
)
def test_whole_numbers_with_a_decimal_part_get_a_spreadsheet_hint(
    write_file: WriteFile, column: str, value: str
) -> None:
    cells = {"obj_id": "3303", "obj_inst_id": "0", "res_id": "5605", "expired_time": "+1d"}
    cells |= {"retry": "3", "timeout": "30", "trigger_msg": "7", column: value}
    path = write_file("c.csv", f"imei,{','.join(cells)}\n{I1},{','.join(cells.values())}\n")
    _, problems = check(path)
    assert len(problems) == 1
    assert problems[0].startswith(f"{path}:2: {column}: must be a whole number")
    assert problems[0].endswith(f"got {value!r} (a decimal part: {SPREADSHEET})")


def test_yaml_whole_number_with_a_decimal_part_says_how_to_write_it(write_file: WriteFile) -> None:
    path = write_file("j.yaml", yaml_job(f"  - imei: '{I1}'\n    res_id: 5850.0\n"))
    _, problems = check(path)
    assert problems == [
        f"{path}:9: res_id: must be a whole number from 0 to 65535, got '5850.0' (write 5850)"
    ]


def test_huge_number_is_a_problem_not_a_crash(write_file: WriteFile) -> None:
    path = write_file(
        "c.csv", f"imei,obj_id,obj_inst_id,res_id,expired_time\n{I1},{'9' * 5000},0,1,+1d\n"
    )
    _, problems = check(path)
    assert len(problems) == 1 and "obj_id: must be a whole number from 0 to 65535" in problems[0]


def test_excel_separator_line_is_skipped(write_file: WriteFile) -> None:
    path = write_file("c.csv", f"sep=,\r\n{CSV_HEAD}{I1},3,0,4,on,+1d\n")
    result, problems = check(path)
    assert (problems, result.commands) == ([], 1)
    assert commands(path)[0].line == 3


def test_excel_separator_line_naming_another_separator_is_an_error(write_file: WriteFile) -> None:
    path = write_file("c.csv", f"\ufeffsep=;\n{CSV_HEAD.replace(',', ';')}")
    with pytest.raises(JobFileError) as err:
        load_job(path)
    assert str(err.value) == (
        f"{path}:1: the line says fields are separated by ';': save the CSV with commas"
    )


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-be", "utf-32"])
def test_yaml_files_in_utf16_are_named_as_such(write_file: WriteFile, codec: str) -> None:
    data = yaml_job(f"  - '{I1}'\n").encode(codec)
    if codec == "utf-16-be":
        data = b"\xfe\xff" + data
    path = write_file("j.yaml", data)
    with pytest.raises(JobFileError) as err:
        validate_job(load_job(path), at=AT)
    kind = "UTF-32" if codec == "utf-32" else "UTF-16"
    assert str(err.value) == (
        f"{path}:1: is {kind} text (it starts with a {kind} byte-order mark): save it as UTF-8"
    )


@pytest.mark.parametrize("name", ["c.csv", "j.yaml"])
def test_utf16_without_a_byte_order_mark_is_named(write_file: WriteFile, name: str) -> None:
    text = CSV_HEAD + f"{I1},3,0,4,on,+1d\n" if name == "c.csv" else yaml_job(f"  - '{I1}'\n")
    path = write_file(name, text.encode("utf-16-le"))
    with pytest.raises(
        JobFileError, match=r":1: looks like UTF-16 text \(every other byte is zero\)"
    ):
        validate_job(load_job(path), at=AT)


def test_gbk_yaml_files_are_named_as_such(write_file: WriteFile) -> None:
    text = yaml_job(f"  - imei: '{I1}'\n    args: 开灯\n").replace("job: test", "job: 水表")
    path = write_file("j.yaml", text.encode("gbk"))
    with pytest.raises(JobFileError) as err:
        validate_job(load_job(path), at=AT)
    assert str(err.value) == f"{path}:1: looks like GBK/GB18030 text: save it as UTF-8"


def test_binary_is_neither_utf8_nor_gb18030(write_file: WriteFile) -> None:
    path = write_file("b.csv", b"imei\n\x89PNG\r\n\x1a\n\x00\x00\xff")
    with pytest.raises(JobFileError) as err:
        load_job(path)
    assert str(err.value) == (
        f"{path}:2: is neither UTF-8 nor GB18030 (GBK) text: save it as UTF-8, or name its"
        " encoding with --encoding"
    )


def test_csv_job_duplicate_is_not_told_to_set_allow_duplicates(write_file: WriteFile) -> None:
    path = write_file("c.csv", f"{CSV_HEAD}{I1},3,0,4,on,+1d\n{I1},3,0,4,on,+2d\n")
    _, problems = check(path)
    assert problems == [
        f"{path}:3: imei: the same command (imei, obj_id, obj_inst_id, res_id, args) as line 2;"
        " remove the repeat, or list this CSV as the targets_csv of a YAML job with"
        " allow_duplicates: true to send it again"
    ]


def test_ignore_columns_skips_named_columns_of_targets_csv(write_file: WriteFile) -> None:
    write_file("d.csv", f"imei,Note,comment,args\n{I1},new meter,x,on\n")
    path = write_file(
        "j.yaml",
        f"defaults:\n  {DEFAULTS}\ntargets_csv: d.csv\nignore_columns: [note, Comment]\n",
    )
    result, problems = check(path)
    assert (problems, result.commands) == ([], 1)
    assert commands(path)[0].args == "on"


def test_unknown_column_of_targets_csv_suggests_ignore_columns(write_file: WriteFile) -> None:
    write_file("d.csv", f"imei,note\n{I1},x\n")
    path = write_file("j.yaml", f"defaults:\n  {DEFAULTS}\ntargets_csv: d.csv\n")
    _, problems = check(path)
    assert problems == [
        f"{path.parent / 'd.csv'}:1: note: unknown column (list it in ignore_columns: or start"
        " its name with # to skip it)"
    ]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("note", "ignore_columns: must be a list of column names, e.g. [note, comment]"),
        ("[note, [a]]", "ignore_columns: must be a list of column names, e.g. [note, comment]"),
        ("[note, ~]", "ignore_columns: is empty (null): give a column name"),
        ('[note, "\\ud800"]', "ignore_columns: holds U+D800"),
    ],
)
def test_ignore_columns_must_be_a_list_of_text(
    write_file: WriteFile, value: str, message: str
) -> None:
    write_file("d.csv", f"imei\n{I1}\n")
    path = write_file(
        "j.yaml", f"defaults:\n  {DEFAULTS}\ntargets_csv: d.csv\nignore_columns: {value}\n"
    )
    _, problems = check(path)
    assert len(problems) == 1 and problems[0].startswith(f"{path}:7: {message}")


def test_ignore_columns_without_targets_csv_is_pointed_out(write_file: WriteFile) -> None:
    path = write_file("j.yaml", yaml_job(f"  - '{I1}'\n", head="ignore_columns: [note]\n"))
    _, problems = check(path)
    assert problems == [
        f"{path}:2: ignore_columns: applies to the columns of targets_csv or targets_xlsx, and"
        " there is none"
    ]


def test_csv_job_skips_columns_named_with_a_hash(write_file: WriteFile) -> None:
    path = write_file(
        "c.csv",
        f"imei,# note,obj_id,obj_inst_id,res_id,expired_time,#\n"
        f"{I1},meter by the door,3,0,4,+1d,x\n",
    )
    result, problems = check(path)
    assert (problems, result.commands) == ([], 1)


def test_csv_job_unknown_column_suggests_a_hash(write_file: WriteFile) -> None:
    path = write_file("c.csv", f"{CSV_HEAD.strip()},note\n{I1},3,0,4,on,+1d,x\n")
    _, problems = check(path)
    assert problems == [
        f"{path}:1: note: unknown column (start its name with # or give --ignore-column note to"
        " skip it)"
    ]

"""CSV jobs: every field, spreadsheets' quirks (BOM, CRLF, quoted newlines), ragged rows, missing
or unknown columns, duplicates across batches."""

from __future__ import annotations

from dispatcher.job.model import (
    Command,
    load_job,
)
from dispatcher.job.seen import SeenKeys
from dispatcher.job.values import luhn_check_digit
from tests.support.files import WriteFile
from tests.support.jobs import (
    AT,
    I1,
    I2,
    I3,
    I4,
    check,
    commands,
)

HEADER = "imei,obj_id,obj_inst_id,res_id,args,valid_time,expired_time,retry,timeout,trigger_msg\n"


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

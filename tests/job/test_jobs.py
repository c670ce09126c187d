"""Files that are not job files give one-line JobFileErrors (never a crash, whatever the bytes),
and the example jobs validate."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from dispatcher.errors import JobFileError
from dispatcher.job.model import (
    Job,
    load_job,
    validate_job,
)
from dispatcher.times import BEIJING
from tests.support.files import WriteFile
from tests.support.jobs import (
    AT,
    I1,
    check,
    yaml_job,
)

ROOT = Path(__file__).resolve().parents[2]


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
        (
            "g.csv",
            b"imei\n" + b"\x89PNG\r\n\x1a\n\x00\x00",
            r"g\.csv:2: is neither UTF-8 nor GB18030 \(GBK\) text",
        ),
        ("h.csv", "device,obj_id\n1,2\n", r"h\.csv:1: imei: no imei column in the header row"),
        (
            "h.csv",
            "imei;obj_id\n1;2\n",
            r"no imei column in the header row \(fields must be separated by commas\)",
        ),
        ("q.csv", 'imei\n"unterminated\n', r"q\.csv:2: not valid CSV: unexpected end of data"),
        ("job.txt", "imei\n", r"job\.txt: not a job file: name it \.yaml, \.yml, \.csv or \.xlsx"),
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

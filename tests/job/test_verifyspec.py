"""A job's ``verify:`` section: read into a VerifySpec, every problem named by file, line and key;
with source command, refused when no step (or command) reads the resource."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, strategies as st

from dispatcher.job.model import load_job
from dispatcher.job.verifyspec import VerifySource, VerifySpec, covers

STEPS = """\
job: fw
defaults:
  obj_inst_id: 0
  expired_time: +2d
steps:
  - op: write
    obj_id: 5
    values: {1: "coap://fw/2.4.1.bin"}
  - op: execute
    obj_id: 5
    res_id: 2
{read}
targets:
  - imei: "860000000000001"
verify:
{verify}
"""
READ_303 = "  - op: read\n    obj_id: 3\n    res_id: 3"


def _job(tmp_path: Path, verify: str, read: str = READ_303) -> tuple[Path, list[str]]:
    path = tmp_path / "fw.yaml"
    path.write_text(STEPS.replace("{read}", read).replace("{verify}", verify), encoding="utf-8")
    job = load_job(path)
    return path, [str(p) for p in job.problems]


def test_read_and_expect_make_the_spec_with_command_as_the_default_source(tmp_path: Path) -> None:
    path, problems = _job(tmp_path, '  read: 3/0/3\n  expect: "2.4.1"\n  timeout: 2h')
    assert problems == []
    spec = load_job(path).verify
    assert spec is not None
    assert (spec.read, spec.expect, spec.timeout_s) == ("3/0/3", ("2.4.1",), 7200.0)
    assert spec.source is VerifySource.COMMAND
    assert spec.datastream == "3_0_3"
    assert spec.matches(" 2.4.1 ") and not spec.matches("2.4.0")


def test_one_of_gives_several_good_values(tmp_path: Path) -> None:
    path, problems = _job(tmp_path, '  read: 3/0/3\n  one_of: ["2.4.1", "2.4.2"]')
    spec = load_job(path).verify
    assert problems == [] and spec is not None
    assert spec.expect == ("2.4.1", "2.4.2")


@pytest.mark.parametrize(
    ("verify", "expected"),
    [
        ('  read: 3/0\n  expect: "1"', "fw.yaml:18: verify.read: must be a resource as object/"),
        ('  expect: "1"', "fw.yaml:17: verify.read: is required"),
        ("  read: 3/0/3", "fw.yaml:17: verify.expect: give exactly one of expect: (a value)"),
        ('  read: 3/0/3\n  expect: "1"\n  one_of: ["1"]', "verify.expect: give exactly one of"),
        ("  read: 3/0/3\n  one_of: 2.4.1", "fw.yaml:19: verify.one_of: must be a list of values"),
        ('  read: 3/0/3\n  expect: "1"\n  source: cache', "fw.yaml:20: verify.source: must be"),
        ('  read: 3/0/3\n  expect: "1"\n  timeout: soon', "fw.yaml:20: verify.timeout: must be a"),
        ('  read: 3/0/3\n  expect: "1"\n  expected: 2', "fw.yaml:20: verify.expected: unknown"),
        ("  - read: 3/0/3", "fw.yaml:17: verify: must be a mapping of read:"),
    ],
)
def test_each_problem_names_the_file_line_and_key(
    tmp_path: Path, verify: str, expected: str
) -> None:
    _, problems = _job(tmp_path, verify)
    assert any(expected in p for p in problems), problems


def test_a_resource_no_step_reads_is_refused_with_what_to_do(tmp_path: Path) -> None:
    _, problems = _job(tmp_path, '  read: 3/0/3\n  expect: "2.4.1"', read="")
    assert [p.removeprefix(f"{tmp_path}/") for p in problems] == [
        "fw.yaml:16: verify.read: 3/0/3: no step reads it; add a read step of 3/0/3 (or 3/0,"
        " or 3), or use source: datapoints"
    ]


@pytest.mark.parametrize("read", ["  - op: read\n    obj_id: 3", "  - {op: read, obj_id: 3}"])
def test_a_read_of_the_whole_object_or_instance_covers_the_resource(
    tmp_path: Path, read: str
) -> None:
    _, problems = _job(tmp_path, '  read: 3/0/3\n  expect: "2.4.1"', read=read)
    assert problems == []


def test_source_datapoints_needs_no_read_step(tmp_path: Path) -> None:
    _, problems = _job(tmp_path, '  read: 3/0/3\n  expect: "2.4.1"\n  source: datapoints', "")
    assert problems == []


def test_a_job_without_steps_is_checked_against_its_commands(tmp_path: Path) -> None:
    path = tmp_path / "read.yaml"
    path.write_text(
        "defaults: {op: read, obj_id: 3, obj_inst_id: 0, res_id: 2, expired_time: +1d}\n"
        'targets:\n  - imei: "860000000000001"\n'
        'verify: {read: 3/0/3, expect: "2.4.1"}\n',
        encoding="utf-8",
    )
    (problem,) = load_job(path).problems
    assert "verify.read: 3/0/3: no command of the job reads it" in str(problem)


_ID = st.integers(0, 9)


@given(obj=_ID, inst=st.none() | _ID, res=st.none() | _ID)
def test_a_read_covers_exactly_the_resources_it_brings_back(
    obj: int, inst: int | None, res: int | None
) -> None:
    spec = VerifySpec(3, 0, 3, ("2.4.1",))
    res = None if inst is None else res
    expected = obj == 3 and inst in (None, 0) and res in (None, 3)
    assert covers(spec, obj, inst, res) is expected

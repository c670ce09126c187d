"""Command fields at the top of a YAML job: each is a default of every target, as ``product:``
is (a job-level ``op: write`` with its ``values:``, say); given at the top and under
``defaults:`` too with another value, it is an error at the second."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import orjson

from dispatcher.job.model import Problem, load_job, validate_job
from dispatcher.model import WriteValue, args_text
from dispatcher.times import BEIJING
from tests.support.files import WriteFile

I1, I2 = "490154203237518", "864512030000003"
AT = datetime(2030, 1, 1, 12, tzinfo=BEIJING)


def problems(path: Path) -> list[str]:
    found: list[Problem] = []
    validate_job(load_job(path), at=AT, on_problem=found.append)
    return [str(p).split(": ", 1)[1] for p in found]


def test_a_job_level_write_applies_to_every_target(write_file: WriteFile) -> None:
    path = write_file(
        "lights.yaml",
        "job: lights\n"
        "op: write\n"
        "obj_id: 3311\n"
        "obj_inst_id: 0\n"
        "values: {5850: true, 5851: 40}\n"
        "expired_time: +1d\n"
        f"targets:\n  - imei: '{I1}'\n  - imei: '{I2}'\n    values: {{5851: 80}}\n",
    )
    assert problems(path) == []
    first, second = load_job(path).commands()
    assert (first.op, first.obj_id, first.obj_inst_id) == ("write", 3311, 0)
    assert first.args is None and second.args is None  # a write sends values, typed
    assert first.values == (WriteValue(5850, True), WriteValue(5851, 40))
    assert second.values == (WriteValue(5851, 80),)
    assert orjson.loads(args_text(first) or "")["data"] == [
        {"res_id": 5850, "val": True},
        {"res_id": 5851, "val": 40},
    ]


def test_a_top_field_and_another_default_is_an_error_at_the_default(
    write_file: WriteFile,
) -> None:
    text = (
        "job: j\nop: write\ndefaults:\n  op: write\n  obj_id: 3311\n  obj_inst_id: 0\n"
        f"  values: {{5850: true}}\n  expired_time: +1d\ntargets:\n  - '{I1}'\n"
    )
    assert problems(write_file("same.yaml", text)) == []  # said twice, the same: no conflict
    path = write_file("other.yaml", text.replace("op: write\ndefaults", "op: read\ndefaults"))
    assert problems(path) == [
        "op: given twice, with another value (first on line 2, at the top of the job)"
    ]


def test_a_top_field_keeps_its_own_rules(write_file: WriteFile) -> None:
    path = write_file(
        "j.yaml",
        f"job: j\nop: wrte\nimei: '{I1}'\nobj_id: [3]\n"
        f"defaults: {{obj_inst_id: 0, res_id: 4, expired_time: +1d}}\ntargets:\n  - '{I1}'\n",
    )
    found = problems(path)
    assert "imei: belongs in each target, not at the top of the job" in found
    assert "obj_id: must be a single value, not a list" in found
    assert any(p.startswith("op: ") for p in found)

"""A target's ``from_step: N`` in a job with steps: no command of the steps before N, step N
waits for nothing before it, the later steps each for the one before, every key as the job
without from_step gives it; a number outside the steps, or from_step anywhere else, is an error
naming its file, line and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from dispatcher.job.model import Command, load_job
from tests.support.jobs import I1, I2, I3, check, commands

STEPS = """\
job: fw
defaults: {obj_inst_id: 0, expired_time: +2d}
steps:
  - {op: write, obj_id: 5, values: {1: "coap://fw.example/2.4.1.bin"}}
  - {op: execute, obj_id: 5, res_id: 2}
  - {op: read, obj_id: 3, res_id: 3}
targets:
"""


def write(tmp_path: Path, targets: str, head: str = STEPS) -> Path:
    path = tmp_path / "job.yaml"
    path.write_text(head + targets, encoding="utf-8")
    return path


def by_device(found: list[Command]) -> dict[str, list[Command]]:
    devices: dict[str, list[Command]] = {}
    for c in found:
        devices.setdefault(c.imei, []).append(c)
    return devices


def test_a_target_from_step_n_gets_no_command_of_the_steps_before_and_the_rest_in_order(
    tmp_path: Path,
) -> None:
    targets = (
        f"  - imei: '{I1}'\n"
        f"  - {{imei: '{I2}', from_step: 2}}\n"
        f"  - {{imei: '{I3}', from_step: 3}}\n"
    )
    devices = by_device(commands(write(tmp_path, targets)))
    assert [c.step for c in devices[I1]] == [1, 2, 3]
    assert [c.step for c in devices[I2]] == [2, 3]
    assert [c.step for c in devices[I3]] == [3]
    # Step N waits for nothing: no step before it is sent; each later one waits for the one before.
    assert devices[I2][0].after == "" and devices[I3][0].after == ""
    assert devices[I2][1].after == devices[I2][0].key


def test_from_step_keeps_each_commands_key_and_fields_as_the_whole_job_gives_them(
    tmp_path: Path,
) -> None:
    whole = commands(write(tmp_path, f"  - imei: '{I1}'\n"))
    later = commands(write(tmp_path, f"  - imei: '{I1}'\n    from_step: 2\n"))
    assert [(c.key, c.op, c.obj_id, c.res_id, c.expired_time) for c in later] == [
        (c.key, c.op, c.obj_id, c.res_id, c.expired_time) for c in whole[1:]
    ]


def test_from_step_1_is_the_whole_job(tmp_path: Path) -> None:
    whole = commands(write(tmp_path, f"  - imei: '{I1}'\n"))
    assert commands(write(tmp_path, f"  - imei: '{I1}'\n    from_step: 1\n")) == whole


def test_the_target_keeps_from_step_for_whoever_reads_the_job(tmp_path: Path) -> None:
    job = load_job(write(tmp_path, f"  - imei: '{I1}'\n  - imei: '{I2}'\n    from_step: 3\n"))
    assert [(t.from_step, t.from_step_line) for t in job.targets] == [(0, 0), (3, 10)]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("4", "the job has 3 steps: give 1 to 3"),
        ("0", "is '0': give the number of the step the device starts at (1, 2, ...)"),
        ("two", "is 'two': give the number"),
        ("'2'", "is '2': give the number"),  # quoted: text, not a number
        ("-1", "is '-1'"),
        ("1.5", "is '1.5'"),
        ("", "is empty (null)"),
        ("[2]", "is empty (null)"),
    ],
)
def test_a_from_step_that_names_no_step_is_an_error_at_its_line_and_the_target_sends_nothing(
    tmp_path: Path, value: str, message: str
) -> None:
    path = write(tmp_path, f"  - imei: '{I1}'\n  - imei: '{I2}'\n    from_step: {value}\n")
    result, problems = check(path)
    assert any(p.startswith(f"{path}:10: from_step: ") and message in p for p in problems), problems
    assert result.errors == len(problems)
    assert {c.imei for c in load_job(path).scan() if isinstance(c, Command)} == {I1}


def test_from_step_in_a_job_without_steps_is_an_error(tmp_path: Path) -> None:
    head = "job: plain\ndefaults: {obj_id: 3, obj_inst_id: 0, res_id: 4, expired_time: +2d}\n"
    head += "targets:\n"
    path = write(tmp_path, f"  - imei: '{I1}'\n    from_step: 1\n", head)
    _, problems = check(path)
    assert problems == [
        f"{path}:5: from_step: applies to a job with steps: only (this job has none)"
    ]


@pytest.mark.parametrize(
    ("head", "said"),
    [
        (STEPS.replace("+2d}", "+2d, from_step: 2}"), "belongs in a target, not in defaults"),
        (STEPS.replace("job: fw\n", "job: fw\nfrom_step: 2\n"), "unknown field"),
    ],
)
def test_from_step_in_the_defaults_or_at_the_top_is_an_error(
    tmp_path: Path, head: str, said: str
) -> None:
    path = write(tmp_path, f"  - imei: '{I1}'\n", head)
    _, problems = check(path)
    assert any(": from_step: " in p and said in p for p in problems), problems


def test_from_step_in_a_step_is_an_error(tmp_path: Path) -> None:
    head = STEPS.replace("res_id: 2}", "res_id: 2, from_step: 2}")
    path = write(tmp_path, f"  - imei: '{I1}'\n", head)
    _, problems = check(path)
    assert problems == [f"{path}:5: from_step: belongs in a target, not in a step"]


def test_from_step_given_twice_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, f"  - imei: '{I1}'\n    from_step: 2\n    from_step: 3\n")
    _, problems = check(path)
    assert any(p.startswith(f"{path}:10: from_step: given twice") for p in problems), problems

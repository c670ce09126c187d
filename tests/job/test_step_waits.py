"""A step's wait: what the next step waits for (accepted, or delivered, with a timeout in three
spellings), read into ``Job.waits``; every wrong wait is a problem naming file, line and key."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, strategies as st

from dispatcher.job.model import load_job
from dispatcher.job.waits import Wait, has_unit, say_duration
from tests.support.files import WriteFile
from tests.support.jobs import I1, check, commands


def _steps_job(first: str = "", second: str = "", defaults: str = "", target: str = "") -> str:
    """A job of two steps (write 5/0/1, execute 5/0/2): ``first`` and ``second`` are lines added
    to each step, ``defaults`` to the defaults, ``target`` to the one target."""
    return (
        "job: fw\n"
        "defaults:\n"
        "  obj_inst_id: 0\n"
        "  expired_time: +2d\n"
        f"{defaults}"
        "steps:\n"
        "  - op: write\n"
        "    obj_id: 5\n"
        "    values: {1: coap://fw/2.4.1}\n"
        f"{first}"
        "  - op: execute\n"
        "    obj_id: 5\n"
        "    res_id: 2\n"
        f"{second}"
        "targets:\n"
        f"  - imei: '{I1}'\n"
        f"{target}"
    )


@pytest.mark.parametrize(
    "first",
    [
        "    wait: delivered\n    wait_timeout: 6h\n",
        "    wait: {until: delivered, timeout: 6h}\n",
        "    wait: delivered\n    timeout: 6h\n",
        "    timeout: 6h\n    wait: delivered\n",
        "    wait:\n      until: delivered\n      timeout: 360m\n",
    ],
)
def test_the_three_spellings_give_the_same_wait(write_file: WriteFile, first: str) -> None:
    job = load_job(write_file("fw.yaml", _steps_job(first)))
    assert job.waits == (Wait("delivered", 6 * 3600.0), Wait("accepted", None))
    assert job.gated
    assert check(job.path)[1] == []


def test_a_bare_timeout_stays_onenets_seconds_beside_a_wait(write_file: WriteFile) -> None:
    path = write_file("fw.yaml", _steps_job("    wait: delivered\n    timeout: 30\n"))
    job = load_job(path)
    assert job.waits[0] == Wait("delivered", None)  # no timeout: until the command is final
    write, execute = commands(path)
    assert (write.timeout, execute.timeout) == (30, 25)


def test_no_wait_is_todays_wait_for_acceptance(write_file: WriteFile) -> None:
    job = load_job(write_file("fw.yaml", _steps_job()))
    assert job.waits == (Wait(), Wait())
    assert not job.gated


def test_defaults_give_every_step_its_wait_and_a_step_overrides_it(
    write_file: WriteFile,
) -> None:
    path = write_file(
        "fw.yaml",
        _steps_job(second="    wait: accepted\n", defaults="  wait: delivered\n  timeout: 2d\n"),
    )
    job = load_job(path)
    assert job.waits == (Wait("delivered", 2 * 86400.0), Wait("accepted", None))
    assert check(path)[1] == []


@pytest.mark.parametrize(
    ("parts", "problem"),
    [
        (
            {"first": "    wait: soon\n"},
            "fw.yaml:9: wait: must be accepted or delivered (what the next step waits for: this"
            " step accepted by OneNET, or delivered to the device), got 'soon'",
        ),
        (
            {"first": "    wait: delivered\n    wait_timeout: 6 hours\n"},
            "fw.yaml:10: wait_timeout: the wait's timeout must be a duration such as 90s, 30m,"
            " 2h or 1d, got '6 hours'",
        ),
        (
            {"first": "    wait: {until: delivered, timeout: 0s}\n"},
            "fw.yaml:9: wait.timeout: the wait's timeout must be longer than zero, got '0s'",
        ),
        (
            {"first": "    wait: {timeout: 6h}\n"},
            "fw.yaml:9: wait: gives no until: (accepted or delivered)",
        ),
        (
            {"first": "    wait: {until: delivered, within: 6h}\n"},
            "fw.yaml:9: wait.within: unknown key: a wait is {until: accepted|delivered,"
            " timeout: 6h}",
        ),
        (
            {"first": "    wait: delivered\n    wait_timeout: 6h\n    timeout: 2h\n"},
            "fw.yaml:11: timeout: a wait's timeout given twice (first as wait_timeout on line 10)",
        ),
        (
            {"first": "    timeout: 6h\n"},
            "fw.yaml:9: timeout: is a wait's timeout, but the step after step 1 waits only for"
            " its acceptance: give wait: delivered on step 1 (OneNET's per-attempt timeout is a"
            " bare number of seconds, 5..40)",
        ),
        (
            {"second": "    wait: accepted\n    wait_timeout: 1h\n"},
            "fw.yaml:13: wait_timeout: is a wait's timeout, but the step after step 2 waits only"
            " for its acceptance: give wait: delivered on step 2",
        ),
        (
            {"defaults": "  wait_timeout: 1h\n"},
            "fw.yaml:5: wait_timeout: is a wait's timeout, but no step waits for delivery: give"
            " wait: delivered",
        ),
        (
            {"target": "    wait: delivered\n"},
            "fw.yaml:14: wait: belongs to a step (what the next step waits for), or to defaults:"
            " of a job with steps:, not in a target",
        ),
    ],
)
def test_a_wrong_wait_names_file_line_and_key(
    write_file: WriteFile, parts: dict[str, str], problem: str
) -> None:
    path = write_file("fw.yaml", _steps_job(**parts))
    result, problems = check(path)
    assert not result.ok
    assert [p.replace(str(path.parent) + "/", "") for p in problems] == [problem]


def test_a_wait_at_the_top_of_a_job_is_refused(write_file: WriteFile) -> None:
    path = write_file("fw.yaml", "wait: delivered\n" + _steps_job())
    problems = [p.replace(str(path.parent) + "/", "") for p in check(path)[1]]
    assert problems == [
        "fw.yaml:1: wait: belongs to a step (what the next step waits for), or to defaults: of"
        " a job with steps:, not at the top of the job"
    ]


def test_a_wait_in_a_job_without_steps_is_refused(write_file: WriteFile) -> None:
    path = write_file(
        "one.yaml",
        "job: one\n"
        "defaults:\n"
        "  obj_id: 5\n"
        "  obj_inst_id: 0\n"
        "  res_id: 2\n"
        "  expired_time: +2d\n"
        "  wait: delivered\n"
        f"targets:\n  - imei: '{I1}'\n",
    )
    problems = [p.replace(str(path.parent) + "/", "") for p in check(path)[1]]
    assert problems == [
        "one.yaml:7: wait: only a job with steps: waits (for a step before the next one is sent)"
    ]


@given(st.integers(1, 30 * 86400))
def test_a_duration_said_reads_back_as_itself(seconds: int) -> None:
    from dispatcher.job.plan import parse_duration

    text = say_duration(seconds)
    assert has_unit(text)
    assert parse_duration(text) == seconds


@given(st.integers(0, 10**6))
def test_a_bare_number_has_no_unit(n: int) -> None:
    assert not has_unit(str(n))
    assert not has_unit(f" {n} ")


def test_the_waits_are_read_from_the_shipped_firmware_update() -> None:
    job = load_job(Path(__file__).resolve().parents[2] / "jobs" / "firmware-update.yaml")
    assert job.waits[0].until == "delivered" and job.waits[1].until == "delivered"

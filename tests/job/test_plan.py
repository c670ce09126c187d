"""The job file's rollout: section, read into the plan, its problems, canary sizes and durations."""

from __future__ import annotations

import pytest

from dispatcher.job.model import load_job
from dispatcher.job.plan import (
    Abort,
    Canary,
    Plan,
    Ramp,
    Rollout,
    parse_canary_size,
    parse_duration,
)
from tests.support.files import WriteFile
from tests.support.jobs import I1
from tests.support.plans import (
    job_with,
    problems,
    validation,
)


def test_a_full_rollout_section_is_read_into_the_plan(write_file: WriteFile) -> None:
    job = job_with(
        write_file,
        "rollout:\n"
        "  canary:\n"
        "    size: 50\n"
        "    wait: delivered\n"
        "    timeout: 30m\n"
        "    then: pause\n"
        "  ramp:\n"
        "    start_per_second: 2\n"
        "    factor: 1.5\n"
        "    every_accepted: 100\n"
        "  abort:\n"
        "    max_failure_rate: 0.05\n"
        "    min_decided: 20\n"
        "    on_errnos: [3, 5006]\n",
    )
    assert job.plan.rollout == Rollout(
        canary=Canary(size=50, wait="delivered", timeout_s=1800.0, then="pause"),
        ramp=Ramp(start_per_second=2.0, factor=1.5, every_accepted=100),
        abort=Abort(max_failure_rate=0.05, min_decided=20, on_errnos=frozenset({3, 5006})),
    )
    assert problems(job) == []


def test_keys_left_out_take_their_defaults(write_file: WriteFile) -> None:
    job = job_with(
        write_file,
        "rollout:\n  canary: {size: '2%'}\n  ramp: {start_per_second: 0.5}\n"
        "  abort: {on_errnos: [7]}\n",
    )
    assert job.plan.rollout == Rollout(
        canary=Canary(percent=2.0),
        ramp=Ramp(start_per_second=0.5),
        abort=Abort(on_errnos=frozenset({7})),
    )
    assert job.plan.rollout.canary == Canary(percent=2.0, wait="accepted", then="continue")


@pytest.mark.parametrize(
    ("written", "canary"),
    [("50", Canary(size=50)), ("'2%'", Canary(percent=2.0)), ("0.5%", Canary(percent=0.5))],
)
def test_the_short_canary_form_is_its_size(
    write_file: WriteFile, written: str, canary: Canary
) -> None:
    job = job_with(write_file, f"rollout:\n  canary: {written}\n")
    assert job.plan.rollout == Rollout(canary=canary)
    assert problems(job) == []


def test_a_job_without_the_sections_has_the_default_plan(write_file: WriteFile) -> None:
    assert job_with(write_file, "").plan == Plan()
    assert (
        load_job(
            write_file(
                "fleet.csv", f"imei,obj_id,obj_inst_id,res_id,expired_time\n{I1},3,0,4,+2d\n"
            )
        ).plan
        == Plan()
    )


@pytest.mark.parametrize(
    ("sections", "expected"),
    [
        ("rollout:\n  canary: 0\n", "3: rollout.canary: must be a number of commands (1 or more)"),
        ("rollout:\n  canary: '0%'\n", "3: rollout.canary: a share must be more than 0%"),
        ("rollout:\n  canary: '101%'\n", "3: rollout.canary: a share must be more than 0%"),
        ("rollout:\n  canary: -5\n", "3: rollout.canary: must be a number of commands"),
        ("rollout:\n  canary: [1]\n", "3: rollout.canary: must be a size (50, or 2%)"),
        ("rollout:\n  canary:\n", "3: rollout.canary: is empty (null)"),
        ("rollout:\n  canary:\n    size: 1.5\n", "4: rollout.canary.size: must be a number"),
        ("rollout:\n  canary:\n    size: ~\n", "4: rollout.canary.size: is empty (null)"),
        ("rollout:\n  canary:\n    wait: accepted\n", "3: rollout.canary.size: is required"),
        (
            "rollout:\n  canary:\n    size: 5\n    wait: soon\n",
            "5: rollout.canary.wait: must be accepted or delivered, got 'soon'",
        ),
        (
            "rollout:\n  canary:\n    size: 5\n    wait: [accepted]\n",
            "5: rollout.canary.wait: must be one value, not a list",
        ),
        (
            "rollout:\n  canary:\n    size: 5\n    wait: delivered\n    timeout: 0s\n",
            "6: rollout.canary.timeout: must be longer than zero",
        ),
        (
            "rollout:\n  canary:\n    size: 5\n    wait: delivered\n    timeout: 31d\n",
            "6: rollout.canary.timeout: must be at most 30 days",
        ),
        (
            "rollout:\n  canary:\n    size: 5\n    wait: delivered\n    timeout: 30\n",
            "6: rollout.canary.timeout: must be a duration such as 90s, 30m, 2h or 1d",
        ),
        (
            "rollout:\n  canary:\n    size: 5\n    then: stop\n",
            "5: rollout.canary.then: must be continue or pause, got 'stop'",
        ),
        (
            "rollout:\n  canary:\n    size: 5\n    sise: 6\n",
            "5: rollout.canary.sise: unknown field (did you mean size?)",
        ),
        (
            "rollout:\n  canary:\n    size: 5\n    size: 6\n",
            "5: rollout.canary.size: given twice (first on line 4)",
        ),
        ("rollout:\n  ramp: 5\n", "3: rollout.ramp: must be a mapping with start_per_second:"),
        (
            "rollout:\n  ramp:\n    factor: 2\n",
            "3: rollout.ramp.start_per_second: is required",
        ),
        (
            "rollout:\n  ramp:\n    start_per_second: 0\n",
            "4: rollout.ramp.start_per_second: must be more than 0, got 0",
        ),
        (
            "rollout:\n  ramp:\n    start_per_second: .nan\n",
            "4: rollout.ramp.start_per_second: must be a number, got '.nan'",
        ),
        (
            "rollout:\n  ramp:\n    start_per_second: fast\n",
            "4: rollout.ramp.start_per_second: must be a number, got 'fast'",
        ),
        (
            "rollout:\n  ramp:\n    start_per_second: 1\n    factor: 0.9\n",
            "5: rollout.ramp.factor: must be 1 or more, got 0.9",
        ),
        (
            "rollout:\n  ramp:\n    start_per_second: 1\n    every_accepted: 0\n",
            "5: rollout.ramp.every_accepted: must be 1 or more, got 0",
        ),
        (
            "rollout:\n  ramp:\n    start_per_second: 1\n    every_accepted: 1e2\n",
            "5: rollout.ramp.every_accepted: must be a whole number, got '1e2'",
        ),
        (
            "rollout:\n  abort:\n    max_failure_rate: 1.5\n",
            "4: rollout.abort.max_failure_rate: must be from 0 to 1 (0.05 is 5%), got 1.5",
        ),
        (
            "rollout:\n  abort:\n    max_failure_rate: 5%\n",
            "4: rollout.abort.max_failure_rate: must be a fraction from 0 to 1 (write 0.05 for 5%)",
        ),
        (
            "rollout:\n  abort:\n    max_failure_rate: 0.1\n    min_decided: 0\n",
            "5: rollout.abort.min_decided: must be 1 or more, got 0",
        ),
        (
            "rollout:\n  abort:\n    on_errnos: 3\n",
            "4: rollout.abort.on_errnos: must be a list of errnos, e.g. [3, 5006]",
        ),
        (
            "rollout:\n  abort:\n    on_errnos:\n      - 3\n      - x\n",
            "6: rollout.abort.on_errnos: must be a whole number, got 'x'",
        ),
        (
            "rollout:\n  abort:\n    on_errnos: [-1]\n",
            "4: rollout.abort.on_errnos: must be an errno, 0 or more, got -1",
        ),
        (
            "rollout:\n  abort:\n    min_decided: 5\n",
            "3: rollout.abort: gives no rule: set max_failure_rate or on_errnos",
        ),
        ("rollout:\n  canery: 5\n", "3: rollout.canery: unknown field (did you mean canary?)"),
        ("rollout:\n", "2: rollout: is empty (null)"),
        ("rollout: [canary]\n", "2: rollout: must be a mapping of canary:, ramp: and abort:"),
        ("rolout:\n  canary: 5\n", "2: rolout: unknown field (did you mean rollout?)"),
    ],
)
def test_each_rollout_problem_names_its_line_and_key(
    write_file: WriteFile, sections: str, expected: str
) -> None:
    found = problems(job_with(write_file, sections))
    assert len(found) == 1, found
    assert found[0].startswith(expected), found


def test_every_rollout_problem_is_reported_not_only_the_first(write_file: WriteFile) -> None:
    job = job_with(
        write_file,
        "rollout:\n"
        "  canary:\n"
        "    size: 0\n"
        "    wait: soon\n"
        "  ramp:\n"
        "    start_per_second: -1\n"
        "    factor: 0\n"
        "  abort:\n"
        "    max_failure_rate: 2\n",
    )
    lines = [p.split(":")[0] for p in problems(job)]
    assert lines == ["4", "5", "7", "8", "10"]
    result, _ = validation(job)
    assert (result.errors, result.commands) == (5, 1)


def test_a_timeout_without_waiting_for_delivery_is_a_warning(write_file: WriteFile) -> None:
    job = job_with(write_file, "rollout:\n  canary:\n    size: 5\n    timeout: 1h\n")
    assert problems(job) == [
        "warning: 5: rollout.canary.timeout: applies only with wait: delivered (waiting for"
        " the devices); it is ignored"
    ]
    assert problems(job, strict=True)[0].startswith("5: rollout.canary.timeout: applies only")
    accepted = job_with(
        write_file, "rollout:\n  canary:\n    size: 5\n    wait: accepted\n    timeout: 1h\n"
    )
    assert problems(accepted)[0].startswith("warning: 6: rollout.canary.timeout")


def test_min_decided_without_a_failure_rate_is_a_warning(write_file: WriteFile) -> None:
    job = job_with(write_file, "rollout:\n  abort:\n    on_errnos: [3]\n    min_decided: 9\n")
    assert problems(job) == [
        "warning: 5: rollout.abort.min_decided: applies to max_failure_rate, which is not set;"
        " it is ignored"
    ]


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("50", (50, None)),
        (" 7 ", (7, None)),
        ("2%", (None, 2.0)),
        ("100%", (None, 100.0)),
        ("0.5 %", (None, 0.5)),
    ],
)
def test_canary_sizes_are_read_as_a_count_or_a_share(
    text: str, size: tuple[int | None, float | None]
) -> None:
    assert parse_canary_size(text) == size


@pytest.mark.parametrize("text", ["0", "-1", "1.5", "0%", "100.1%", "%", "fifty", "", "2 %%"])
def test_bad_canary_sizes_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_canary_size(text)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("30m", 1800),
        ("2h", 7200),
        ("1d", 86400),
        ("+30m", 1800),
        ("1h30m", 5400),
        ("30d", 30 * 86400),
    ],
)
def test_durations_are_read_in_seconds(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["30", "0m", "30d1s", "", "soon", "-5m", "99999999999d"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)

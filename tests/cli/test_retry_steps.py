"""``dispatcher retry-failed`` on the ledger of a job with steps, in-process: the retry job has the
devices that did not finish, each from its first step not done, and validates; the hand-over
follows the lifecycle table, so a second retry writes nothing new; and what it refuses (a CSV, a
job file edited or gone since)."""

from __future__ import annotations

from pathlib import Path

from dispatcher.job.model import load_job
from dispatcher.ledger.sqlite import Ledger
from dispatcher.ledger.store import Status
from tests.support.cli import invoke, no_traceback
from tests.support.e2e import fleet
from tests.support.retry_steps import STAGES, make_steps_ledger, write_steps_job

# Where each stage starts again in the retry job (wait: accepted, the default), or None: left out.
FROM_STEP: dict[str, int | None] = {
    "delivered all": None,
    "step 1 expired": 1,
    "step 2 failed on the device": 2,
    "step 2 rejected": 2,
    "held back": 1,
    "in doubt": None,
    "step 3 open": None,
    "step 2 not read": None,
    "step 1 expired, later ones delivered": None,
    "step 2 cancelled": None,
    "never sent": 1,
}


def at_every_stage(tmp_path: Path) -> tuple[Path, Path, dict[str, str]]:
    """A job of steps and its ledger, a device at each stage; the device of each stage."""
    assert set(FROM_STEP) == set(STAGES)
    devices = fleet(len(FROM_STEP), start=200)
    job = write_steps_job(tmp_path / "fw.yaml", devices)
    return job, make_steps_ledger(job, list(FROM_STEP)), dict(zip(FROM_STEP, devices, strict=True))


def test_the_retry_job_has_each_device_that_did_not_finish_from_its_first_step_not_done(
    tmp_path: Path,
) -> None:
    _, ledger_path, device = at_every_stage(tmp_path)
    out = tmp_path / "retry.yaml"

    made = invoke("retry-failed", ledger_path, "-o", out)

    assert made.exit_code == 0, made.stderr
    retry = load_job(out)
    got = {t.values[0]: t.from_step for t in retry.targets}
    assert got == {device[s]: n for s, n in FROM_STEP.items() if n is not None}
    said = " ".join(made.stderr.split())
    assert "wrote 5 devices (13 commands)" in said
    assert "left out 3 devices (1 may be at OneNET, 1 cancelled, 1 a later step done)" in said
    checked = invoke("validate", out)
    assert checked.exit_code == 0, checked.stdout + checked.stderr
    # Each device's commands are its steps from its start, the first waiting for nothing.
    steps: dict[str, list[int]] = {}
    for c in retry.commands():
        steps.setdefault(c.imei, []).append(c.step)
        assert bool(c.after) == (c.step != got[c.imei])
    assert steps == {imei: list(range(n, 4)) for imei, n in got.items()}
    # The device whose target gave its own retry keeps it.
    assert {c.retry for c in retry.commands() if c.imei == device["step 1 expired"]} == {7}


def test_the_hand_over_follows_the_lifecycle_and_a_second_retry_writes_nothing_new(
    tmp_path: Path,
) -> None:
    _, ledger_path, device = at_every_stage(tmp_path)
    out = tmp_path / "retry.yaml"
    assert invoke("retry-failed", ledger_path, "-o", out).exit_code == 0
    with Ledger.open(ledger_path, read_only=True) as ledger:
        rows = {(r.command.imei, r.command.step): r for r in ledger.rows()}
    into = str(out.resolve())
    handed = {k for k, r in rows.items() if r.retried_in is not None}
    assert handed == {
        (device[s], step) for s, n in FROM_STEP.items() if n is not None for step in range(n, 4)
    }
    assert {r.retried_in for k, r in rows.items() if k in handed} == {into}
    # Sent ones keep their status; never sent ones (failed, held back, pending) become retried.
    assert rows[device["step 2 rejected"], 2].status is Status.REJECTED
    assert rows[device["step 2 rejected"], 3].status is Status.RETRIED
    assert rows[device["step 1 expired"], 1].status is Status.ACCEPTED
    assert {rows[device["held back"], step].status for step in (1, 2, 3)} == {Status.RETRIED}
    assert {rows[device["never sent"], step].status for step in (1, 2, 3)} == {Status.RETRIED}

    again = invoke("retry-failed", ledger_path, "-o", tmp_path / "retry2.yaml")

    assert again.exit_code == 0, again.stderr
    assert not (tmp_path / "retry2.yaml").exists()
    assert "nothing to retry" in again.stderr
    assert f"left out 5 devices already handed to the retry job {into}" in again.stderr
    # The same file again (--force): the same hand-over, the same job.
    first = _starts(out)
    same = invoke("retry-failed", ledger_path, "-o", out, "--force")
    assert same.exit_code == 0, same.stderr
    assert _starts(out) == first


def _starts(path: Path) -> list[tuple[str | None, int]]:
    return [(t.values[0], t.from_step) for t in load_job(path).targets]


def test_a_retry_job_of_steps_is_yaml(tmp_path: Path) -> None:
    _, ledger_path, _ = at_every_stage(tmp_path)
    made = invoke("retry-failed", ledger_path, "-o", tmp_path / "retry.csv")
    assert made.exit_code == 2
    assert "a job with steps: is written as YAML: name it .yaml" in made.stderr
    assert no_traceback(made.stdout, made.stderr)
    with Ledger.open(ledger_path, read_only=True) as ledger:
        assert not any(r.retried_in for r in ledger.rows())


def test_a_job_file_edited_since_is_refused_and_nothing_is_handed_over(tmp_path: Path) -> None:
    job, ledger_path, _ = at_every_stage(tmp_path)
    job.write_text(job.read_text("utf-8").replace("res_id: 2,", "res_id: 3,"), encoding="utf-8")

    made = invoke("retry-failed", ledger_path, "-o", tmp_path / "retry.yaml")

    assert made.exit_code == 2, made.stderr
    assert "not written, nothing handed over" in made.stderr
    assert not (tmp_path / "retry.yaml").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    with Ledger.open(ledger_path, read_only=True) as ledger:
        assert not any(r.retried_in for r in ledger.rows())


def test_a_job_file_gone_is_refused_with_where_it_was(tmp_path: Path) -> None:
    job, ledger_path, _ = at_every_stage(tmp_path)
    job.rename(tmp_path / "moved.yaml")

    made = invoke("retry-failed", ledger_path, "-o", tmp_path / "retry.yaml")

    assert made.exit_code == 2
    assert "copies the steps of its job file" in made.stderr and str(job) in made.stderr
    assert no_traceback(made.stdout, made.stderr)


def test_the_retry_jobs_own_ledger_is_retried_the_same_way_for_the_next_round(
    tmp_path: Path,
) -> None:
    _, ledger_path, device = at_every_stage(tmp_path)
    out = tmp_path / "retry.yaml"
    assert invoke("retry-failed", ledger_path, "-o", out).exit_code == 0
    # The retry job's own run: its devices start at 1, 2, 2, 1, 1 (in the job's order).
    retry_ledger = make_steps_ledger(
        out,
        [
            ["delivered", "never woke", "never woke"],  # step 1 expired: now from step 2
            ["device error", "device error"],  # step 2 failed on the device, again
            ["delivered", "delivered"],  # step 2 rejected: finished now
            ["delivered", "delivered", "delivered"],  # held back: finished now
            ["rejected", "held back", "held back"],  # never sent: rejected at step 1
        ],
    )
    again = tmp_path / "retry-2.yaml"

    made = invoke("retry-failed", retry_ledger, "-o", again)

    assert made.exit_code == 0, made.stderr
    job = load_job(again)
    assert job.name == "firmware-retry-retry"
    assert [(t.values[0], t.from_step) for t in job.targets] == [
        (device["step 1 expired"], 2),
        (device["step 2 failed on the device"], 2),
        (device["never sent"], 1),
    ]
    assert invoke("validate", again).exit_code == 0

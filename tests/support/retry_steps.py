"""Ledgers of a job with steps whose devices stopped at every stage, for the retry-failed tests:
the job (three steps of a firmware update), and its ledger with each step's fate written as a run
and ``dispatcher status`` write it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from dispatcher.job.model import Command, load_job
from dispatcher.ledger.identity import JobRecord
from dispatcher.ledger.sqlite import Ledger
from dispatcher.ledger.store import Delivery, InFlight, LedgerStore, Result, Status
from tests.support.ledger import write_outcomes
from tests.support.retry import FATES, T

STEPS = """\
steps:
  - op: write
    obj_id: 5
    values: {1: "coap://fw.example/2.4.1.bin"}
  - {op: execute, obj_id: 5, res_id: 2, valid_time: +30m}
  - op: read
    obj_id: 3
    res_id: 3
    valid_time: +2h
"""


def write_steps_job(path: Path, imeis: list[str], *, rollout: bool = True) -> Path:
    """A job of three steps for ``imeis`` (``rollout``: with a canary, which a retry job does
    not copy); the second device's target gives its own retry."""
    targets = "".join(
        f"  - imei: '{device}'\n" + ("    retry: 7\n" if n == 1 else "")
        for n, device in enumerate(imeis)
    )
    path.write_text(
        "job: firmware\n"
        "defaults:\n"
        "  obj_inst_id: 0\n"
        "  expired_time: +2d\n"
        "  trigger: [register, update]\n"
        + ("rollout: {canary: 1}\n" if rollout else "")
        + f"{STEPS}targets:\n{targets}",
        encoding="utf-8",
    )
    return path


# Each device's stage: the fate of each of its steps (tests/support/retry.py's FATES, and
# "held back": skipped after the step before did not get through).
STAGES: dict[str, tuple[str, str, str]] = {
    "delivered all": ("delivered", "delivered", "delivered"),
    "step 1 expired": ("never woke", "never woke", "never woke"),
    "step 2 failed on the device": ("delivered", "device error", "device error"),
    "step 2 rejected": ("delivered", "rejected", "held back"),
    "held back": ("failed", "held back", "held back"),
    "in doubt": ("delivered", "in_doubt", "held back"),
    "step 3 open": ("delivered", "delivered", "waiting"),
    "step 2 not read": ("delivered", "unread", "unread"),
    "step 1 expired, later ones delivered": ("never woke", "delivered", "delivered"),
    "step 2 cancelled": ("delivered", "cancelled", "held back"),
    "never sent": ("pending", "pending", "pending"),
}


def make_steps_ledger(job_path: Path, stages: list[str]) -> Path:
    """The job's SQLite ledger, device by device at ``stages`` (in the job's order of devices)."""
    path = job_path.with_name(job_path.name + ".ledger.db")
    with Ledger.open(path, clock=lambda: T) as ledger:
        fill(ledger, job_path, stages)
    return path


def fill(ledger: LedgerStore, job_path: Path, stages: Sequence[Sequence[str]] | list[str]) -> None:
    """Register the job's commands in ``ledger`` and write each device's stage (a name of
    STAGES, or the fate of each of its steps)."""
    job = load_job(job_path)
    commands = list(job.commands())
    ledger.set_job(JobRecord(str(job_path.resolve()), job.name, "0" * 32, len(commands)))
    ledger.register(commands)
    run_id = ledger.start_run(str(job_path), {})
    fates = [
        fate for stage in stages for fate in (STAGES[stage] if isinstance(stage, str) else stage)
    ]
    assert len(fates) == len(commands)
    for cmd, fate in zip(commands, fates, strict=True):
        write_fate(ledger, cmd, fate, run_id)
    ledger.finish_run(run_id, {}, None)


def write_fate(ledger: LedgerStore, cmd: Command, fate: str, run_id: int) -> None:
    """One step's fate written as a run (and dispatcher status) write it."""
    if fate == "held back":
        ledger.skip([cmd.key], "held back: the step before is not accepted")
        return
    status, errno, send_status = FATES[fate]
    if status is Status.PENDING:
        return
    if status is Status.IN_FLIGHT:
        ledger.write_batch([InFlight(cmd.key, T, None, "2030-01-03T00:00:00", run_id)], [])
        return
    uuid = f"uuid-{cmd.imei}-{cmd.step}" if status is Status.ACCEPTED else None
    write_outcomes(ledger, [Result(cmd.key, status, errno, "", uuid, 1, T, 5.0)], run_id=run_id)
    if send_status is not None:
        ledger.record_delivery([Delivery(cmd.key, send_status, None, None, None, None, T)])

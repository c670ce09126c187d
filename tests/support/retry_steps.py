"""Ledgers of a job with steps whose devices stopped at every stage, for the retry-failed tests:
the job (three steps of a firmware update), and its ledger with each step's fate written as a run
and ``dispatcher status`` write it."""

from __future__ import annotations

from pathlib import Path

from dispatcher.job.model import load_job
from dispatcher.ledger.identity import JobRecord
from dispatcher.ledger.sqlite import Ledger
from tests.support.retry import T, settle

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


def write_steps_job(path: Path, imeis: list[str], *, steps: str = STEPS, extra: str = "") -> Path:
    """A job of three steps for ``imeis``; the second device's target gives its own retry."""
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
        "rollout: {canary: 1}\n"
        f"{extra}{steps}targets:\n{targets}",
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
}


def make_steps_ledger(job_path: Path, stages: list[str], *, into: Path | None = None) -> Path:
    """The job's ledger, device by device at ``stages`` (in the job's order of devices)."""
    job = load_job(job_path)
    commands = list(job.commands())
    path = into or job_path.with_name(job_path.name + ".ledger.db")
    with Ledger.open(path, clock=lambda: T) as ledger:
        ledger.set_job(JobRecord(str(job_path.resolve()), job.name, "0" * 32, len(commands)))
        ledger.register(commands)
        run_id = ledger.start_run(str(job_path), {})
        fates = [fate for stage in stages for fate in STAGES[stage]]
        assert len(fates) == len(commands)
        for cmd, fate in zip(commands, fates, strict=True):
            if fate == "held back":
                ledger.skip([cmd.key], "held back: the step before is not accepted")
            else:
                settle(ledger, cmd, fate, run_id)
        ledger.finish_run(run_id, {}, None)
    return path

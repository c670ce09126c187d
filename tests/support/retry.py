"""Ledgers whose commands met every fate a run can give them, for the retry-failed tests: the job,
its ledger with each command's fate written as a run writes it."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from pathlib import Path

from dispatcher.job.model import Command, load_job
from dispatcher.ledger.identity import JobRecord
from dispatcher.ledger.sqlite import Ledger
from dispatcher.ledger.store import Delivery, InFlight, Result, Status
from dispatcher.report.retry import Reason
from dispatcher.times import BEIJING
from tests.support.ledger import write_outcomes

T = 1_900_000_000.0  # an outcome's time (unix seconds)


# What became of a command, as the ledger records it: (status, errno, send_status).
FATES: dict[str, tuple[Status, int | None, int | None]] = {
    "rejected": (Status.REJECTED, 1, None),
    "failed": (Status.FAILED, None, None),
    "expired": (Status.EXPIRED, None, None),
    "pending": (Status.PENDING, None, None),
    "in_doubt": (Status.IN_DOUBT, None, None),
    "in_flight": (Status.IN_FLIGHT, None, None),
    "unread": (Status.ACCEPTED, None, None),
    "waiting": (Status.ACCEPTED, None, 1),
    "cancelled": (Status.ACCEPTED, None, 2),
    "sent": (Status.ACCEPTED, None, 3),
    "never woke": (Status.ACCEPTED, None, 4),
    "delivered": (Status.ACCEPTED, None, 5),
    "device error": (Status.ACCEPTED, None, 6),
    "failed 7": (Status.ACCEPTED, None, 7),
    "failed 8": (Status.ACCEPTED, None, 8),
}


def write_job(
    path: Path,
    imeis: list[str],
    *,
    expired_time: str = "+2d",
    valid_time: str | None = None,
    name: str = "reboot bench",
) -> Path:
    """A YAML job of one command per device, with defaults and a field or two per target."""
    valid = "" if valid_time is None else f"  valid_time: '{valid_time}'\n"
    targets = "".join(
        f"  - imei: '{device}'\n    args: 'go, \"{n:03d}\"'\n    retry: {n % 11}\n"
        for n, device in enumerate(imeis)
    )
    path.write_text(
        f"job: {name}\n"
        "defaults:\n"
        "  obj_id: 3303\n"
        "  obj_inst_id: 0\n"
        "  res_id: 5605\n"
        f"  expired_time: '{expired_time}'\n{valid}"
        "  timeout: 30\n"
        "  trigger: [register, update]\n"
        f"targets:\n{targets}",
        encoding="utf-8",
    )
    return path


def make_ledger(
    job_path: Path, fates: list[str], *, finished: bool = True, unregistered: int = 0
) -> Path:
    """The job's ledger, each command's fate (``fates``, in job order) written as by a run."""
    job = load_job(job_path)
    commands = list(job.commands())
    assert len(commands) == len(fates)
    path = job_path.with_name(job_path.name + ".ledger.db")
    with Ledger.open(path, clock=lambda: T) as ledger:
        total = len(commands) + unregistered
        ledger.set_job(JobRecord(str(job_path.resolve()), job.name, "0" * 32, total))
        ledger.register(commands)
        run_id = ledger.start_run(str(job_path), {})
        for cmd, fate in zip(commands, fates, strict=True):
            settle(ledger, cmd, fate, run_id)
        if finished:
            ledger.finish_run(run_id, {}, None)
    return path


def settle(ledger: Ledger, cmd: Command, fate: str, run_id: int) -> None:
    """Write one command's fate into the ledger."""
    status, errno, send_status = FATES[fate]
    if status is Status.PENDING:
        return
    if status is Status.IN_FLIGHT:
        ledger.write_batch([InFlight(cmd.key, T, None, "2030-01-03T00:00:00", run_id)], [])
        return
    uuid = f"uuid-{cmd.imei}" if status is Status.ACCEPTED else None
    write_outcomes(ledger, [Result(cmd.key, status, errno, "", uuid, 1, T, 5.0)])
    if send_status is not None:
        ledger.record_delivery([Delivery(cmd.key, send_status, None, None, None, None, T)])


AT = datetime(2030, 1, 1, 12, 0, tzinfo=BEIJING)  # hypothesis' times all lie after it

SENT_AGAIN = {
    "rejected": Reason.REJECTED,
    "failed": Reason.FAILED,
    "expired": Reason.EXPIRED,
    "pending": Reason.NOT_SENT,
    "never woke": Reason.DELIVERY_EXPIRED,
    "device error": Reason.DELIVERY_FAILED,
    "failed 7": Reason.DELIVERY_FAILED,
    "failed 8": Reason.DELIVERY_FAILED,
}
LEFT_OUT = sorted(set(FATES) - set(SENT_AGAIN))


def fields_of(cmd: Command) -> Command:
    """What a command read back gives for each field (not where it was read, nor its key)."""
    return replace(cmd, source="", line=0, key="", occurrence=0)


def read_back(path: Path) -> list[Command]:
    """Every command of a job file, checked at AT; any error fails the test (warnings pass)."""
    commands = []
    for item in load_job(path).scan(at=AT):
        if isinstance(item, Command):
            commands.append(fields_of(item))
        else:
            assert item.warning, str(item)
    return commands

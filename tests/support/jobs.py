"""What the job tests share: the moment jobs are checked against, a CSV header, a job's check and
commands, a YAML job written from its lines."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from dispatcher.job.model import (
    Command,
    Problem,
    Reading,
    Validation,
    load_job,
    validate_job,
)
from dispatcher.times import BEIJING

AT = datetime(2030, 1, 1, 12, 0, 0, tzinfo=BEIJING)


# Valid IMEIs (correct Luhn check digit).
I1, I2, I3, I4 = "490154203237518", "864512030000003", "358476090000076", "867231050000002"


def check(
    path: Path, *, at: datetime = AT, strict: bool = False, reading: Reading | None = None
) -> tuple[Validation, list[str]]:
    """Validate a job file; the result and every problem as the CLI would print it."""
    found: list[Problem] = []
    job = load_job(path, reading)
    result = validate_job(job, at=at, strict=strict, on_problem=found.append)
    return result, [("warning: " if p.warning else "") + str(p) for p in found]


def commands(path: Path, reading: Reading | None = None) -> list[Command]:
    """The commands of a job file."""
    return list(load_job(path, reading).commands())


CSV_HEAD = "imei,obj_id,obj_inst_id,res_id,args,expired_time\n"  # a CSV job's header
DEFAULTS = "obj_id: 3\n  obj_inst_id: 0\n  res_id: 4\n  expired_time: +2d"


def yaml_job(targets: str, defaults: str = DEFAULTS, head: str = "") -> str:
    """A YAML job of ``targets`` (lines under ``targets:``) with ``defaults``, ``head`` lines
    (sections) before them."""
    return f"job: test\n{head}defaults:\n  {defaults}\ntargets:\n{targets}"

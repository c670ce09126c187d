"""What the tests of a job's plan share: a YAML job from its sections, its problems and its
validation."""

from __future__ import annotations

from datetime import datetime

from dispatcher.job.model import Job, Problem, Validation, load_job, validate_job
from tests.support.files import WriteFile
from tests.support.jobs import AT, I1

DEFAULTS = "defaults:\n  obj_id: 3\n  obj_inst_id: 0\n  res_id: 4\n  expired_time: +2d\n"
TARGETS = f"targets:\n  - imei: '{I1}'\n"


def job_with(write_file: WriteFile, sections: str, *, rest: str = DEFAULTS + TARGETS) -> Job:
    """A YAML job whose first lines (from line 2) are ``sections``."""
    return load_job(write_file("job.yaml", "job: plan\n" + sections + rest))


def problems(job: Job, *, at: datetime = AT, strict: bool = False) -> list[str]:
    """Every problem of validating ``job`` at ``at``, without its file name."""
    found: list[Problem] = []
    validate_job(job, at=at, strict=strict, on_problem=found.append)
    return [("warning: " if p.warning else "") + str(p).split(":", 1)[1] for p in found]


def validation(job: Job, *, at: datetime = AT) -> tuple[Validation, list[str]]:
    """The validation of ``job`` at ``at`` and every problem as printed."""
    found: list[str] = []
    result = validate_job(job, at=at, on_problem=lambda p: found.append(str(p)))
    return result, found

"""The validate use case: job files read and checked without sending anything (and, given the
config, the products they name checked against it), one result per file as it is checked.

May import: errors, times, config, job, app (keys, events). Never the client: validating does not
load aiohttp.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from dispatcher.app.keys import product_problems
from dispatcher.app.verify_checks import platform_problems
from dispatcher.config import Settings
from dispatcher.errors import DispatcherError
from dispatcher.job.model import Job, Problem, Reading, Validation, load_job, validate_job
from dispatcher.job.query import SAMPLE_IMEI, TargetsQuery

if TYPE_CHECKING:
    from dispatcher.app.events import Events

__all__ = ["Checked", "ValidateRequest", "validate"]


@dataclass(frozen=True, slots=True)
class ValidateRequest:
    """The job files to check, against a planned start (None: now), warnings as errors or not;
    ``config``: the config file's name, for messages about its products."""

    jobs: tuple[Path, ...]
    at: datetime | None = None
    strict: bool = False
    config: str | None = None
    reading: Reading | None = None  # how a CSV or sheet job file is read (None: as found)


@dataclass(frozen=True, slots=True)
class Checked:
    """One job file checked: its validation (the products' problems counted), or the error
    that kept it from being read at all."""

    path: Path
    job: Job | None
    result: Validation | None
    error: DispatcherError | None = None
    sample: bool = False  # its targets_query's commands were checked on a sample device

    @property
    def ok(self) -> bool:
        """Read, and without errors."""
        return self.result is not None and self.result.ok


def validate(
    settings: Settings | None, request: ValidateRequest, *, events: Events | None = None
) -> Iterator[Checked]:
    """Each job file of ``request`` checked, in order; its problems go to ``events`` as they are
    found (with ``settings``, the products it names that the config does not, too)."""
    if events is None:
        from dispatcher.app.events import Quiet

        events = Quiet()
    for path in request.jobs:
        try:
            job = load_job(path, request.reading)
            # A query's devices are found at run time: its commands are checked on a sample
            # device, so that a step or a default that cannot make a command is found now.
            sample = job.query is not None and not job.queried
            checked = dataclasses.replace(job, queried=(SAMPLE_IMEI,)) if sample else job
            result = validate_job(
                checked, at=request.at, strict=request.strict, on_problem=events.problem
            )
        except DispatcherError as exc:
            yield Checked(path, None, None, exc)
            continue
        unknown = [] if settings is None else product_problems(result, settings, request.config)
        if settings is not None and job.query is not None:
            unknown += query_problems(job, job.query, settings, request.config)
        if settings is not None:
            unknown += platform_problems(job, result.products, settings)
        for problem in unknown:
            events.problem(problem)
        if unknown:
            result = dataclasses.replace(result, errors=result.errors + len(unknown))
        yield Checked(path, job, result, sample=sample)


def query_problems(
    job: Job, query: TargetsQuery, settings: Settings, config: str | None
) -> list[Problem]:
    """A targets_query of a product the config does not name: an error at its line."""
    name = (query.product or "").strip()
    if not name or name in settings.products:
        return []
    known = ", ".join(sorted(settings.products)) or "none"
    message = f"no product {name!r} in {config or 'the config'} (products: {known})"
    return [Problem(job.source, query.line, "targets_query.product", message)]

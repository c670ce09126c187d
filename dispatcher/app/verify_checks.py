"""What a job's ``verify:`` needs of the config, checked before anything is sent: ``source:
datapoints`` reads the legacy platform's latest datapoints, which the newer platform (iot-api) has
not, so a job whose product is on iot-api is refused by validate and run, not by verify after the
firmware went out.

May import: config, job, model.
"""

from __future__ import annotations

from collections.abc import Iterable

from dispatcher.config import Settings
from dispatcher.job.model import Job
from dispatcher.job.rows import Problem
from dispatcher.job.verifyspec import VerifySource, VerifySpec
from dispatcher.model.command import product_label

__all__ = ["newer_platform", "platform_problems"]


def newer_platform(spec: VerifySpec, name: str, several: bool) -> str:
    """Why ``source: datapoints`` cannot be read for the product ``name`` (on iot-api)."""
    lane = f"{product_label(name)} is" if several else "the config is"
    return (
        f"verify.source: datapoints reads GET /devices/datapoints, which only the legacy platform"
        f" (onenet.platform: onenet) has, and {lane} on iot-api: use source: command with a read"
        f" step of {spec.read}"
    )


def platform_problems(job: Job, products: Iterable[str], settings: Settings) -> list[Problem]:
    """The problem of a ``source: datapoints`` verify whose products (names the job's commands
    give; "" for the config's own) are on the newer platform: at the line of ``verify:``."""
    spec = job.verify
    if spec is None or spec.source is not VerifySource.DATAPOINTS:
        return []
    for name in sorted(set(products)) or [""]:
        known = bool(name) and name in settings.products
        lane = settings.for_product(name) if known else settings
        if lane.onenet.platform != "onenet":
            message = newer_platform(spec, name, known).removeprefix("verify.source: ")
            return [Problem(job.source, spec.line, "verify.source", message)]
    return []

"""What the tests of a ledger's job share: its devices and configs, a job's text and file, a run of
it against the emulator, and a report's table."""

from __future__ import annotations

from pathlib import Path

from tests.support.cli import (
    Done,
    dispatcher_async,
)
from tests.support.e2e import (
    CONFIG_YAML,
    fleet,
    write_config,
)

DEVICES = fleet(4, start=500)


# Every request answered HTTP 500 and tried once: each command ends failed, none held by OneNET.
FAILING_CONFIG = CONFIG_YAML.replace("max_attempts: 10", "max_attempts: 1").replace(
    "settle_s: 0.3", "settle_s: 0"
)


QUICK_CONFIG = CONFIG_YAML.replace("settle_s: 0.3", "settle_s: 0")


def job_text(*imeis: str, name: str = "identity", trigger: str = "[register, update]") -> str:
    """A YAML job with one command per device (its targets from line 10 on)."""
    targets = "".join(f'  - imei: "{i}"\n' for i in imeis)
    return (
        f"job: {name}\n"
        "defaults:\n"
        "  obj_id: 5\n"
        "  obj_inst_id: 0\n"
        "  res_id: 2\n"
        "  args: fw=2.4.1\n"
        "  expired_time: +2d\n"
        f"  trigger: {trigger}\n"
        "targets:\n"
        f"{targets}"
    )


def write(path: Path, text: str) -> Path:
    """Write ``text`` to ``path``; the path."""
    path.write_text(text, encoding="utf-8")
    return path


async def run(cwd: Path, job: str | Path, url: str, *more: str | Path, config: str = "") -> Done:
    """``dispatcher run JOB --base-url URL --config ... MORE`` as a real process."""
    config_path = write_config(cwd, config or QUICK_CONFIG)
    return await dispatcher_async(
        "run", job, "--base-url", url, "--config", config_path, "--rate", "0", *more, cwd=cwd
    )

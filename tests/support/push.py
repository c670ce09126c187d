"""The push.yaml job the rollout, status and cancel tests run: one firmware push delivered on an
UPDATE, its config, its run against the emulator, its ledger's rows, and the fleet it meets."""

from __future__ import annotations

from pathlib import Path

from dispatcher.emulator.devices import UPDATE, Fleet
from dispatcher.job.plan import Canary
from dispatcher.ledger.store import Row
from dispatcher.run.rollout import canary_positions
from tests.support.cli import Done, dispatcher_async
from tests.support.e2e import CONFIG_YAML, write_config
from tests.support.ledger import ledger_rows

# One wake a minute on schedule, always an UPDATE, answered 30 s after it is sent; a fifth of
# the devices never wake, a third answer with an error.
FLEET = Fleet(
    wake_every_s=60,
    wake_jitter=0.0,
    never_wake=0.2,
    device_errors=0.3,
    answer_delay_s=30,
    uplinks=((UPDATE, 1.0),),
    seed=5,
)


def write_job(directory: Path, imeis: list[str], *, extra: str = "") -> Path:
    """push.yaml: one command per device, ``extra`` lines before its targets."""
    targets = "".join(f'  - imei: "{i}"\n' for i in imeis)
    path = directory / "push.yaml"
    path.write_text(
        "job: push\n"
        "defaults:\n"
        "  obj_id: 5\n"
        "  obj_inst_id: 0\n"
        "  res_id: 2\n"
        "  args: fw=2\n"
        "  expired_time: '+1d'\n"
        "  trigger: [update]\n"
        f"{extra}"
        f"targets:\n{targets}",
        encoding="utf-8",
    )
    return path


def config(directory: Path) -> None:
    """config.yaml for push.yaml runs: delivery read back every 0.2 s."""
    text = CONFIG_YAML.replace("reliability:\n", "reliability:\n  delivery_poll_s: 0.2\n")
    write_config(directory, text)


async def run(url: str, directory: Path, *args: str) -> Done:
    """``dispatcher run push.yaml ARGS`` against the OneNET at ``url``."""
    return await dispatcher_async(
        "run", "push.yaml", "--config", "config.yaml", "--base-url", url, *args, cwd=directory
    )


def rows(directory: Path) -> list[Row]:
    """The rows of push.yaml's ledger."""
    return ledger_rows(directory / "push.yaml.ledger.db")


def two_per_device_job(directory: Path, imeis: list[str], expired: str = "+10m") -> Path:
    """Two commands for each device (two resources), delivered on an UPDATE."""
    targets = "".join(f'  - imei: "{i}"\n    res_id: {res}\n' for i in imeis for res in (2, 10))
    path = directory / "push.yaml"
    path.write_text(
        "job: push\n"
        "defaults:\n"
        "  obj_id: 5\n"
        "  obj_inst_id: 0\n"
        "  res_id: 2\n"
        "  args: fw=2\n"
        f"  expired_time: '{expired}'\n"
        "  trigger: [update]\n"
        f"targets:\n{targets}",
        encoding="utf-8",
    )
    return path


def canary_imeis(imeis: list[str], size: int) -> list[str]:
    """The devices of a canary of ``size`` drawn from ``imeis``, in job order."""
    return [imeis[p] for p in sorted(canary_positions(len(imeis), Canary(size=size)))]

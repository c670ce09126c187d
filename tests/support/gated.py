"""Jobs of steps gated on delivery run in-process against the emulator on virtual time: the job
file, the run (``run_gated``: the real client over ``EmulatorTransport``, the run's clock and
sleeps and the emulator's clock one ``VirtualTime``), and what the emulator itself says of each
device's commands (created when, delivered when: its history, read through the client)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from dispatcher.config import Settings
from dispatcher.emulator.devices import UPDATE, Fleet
from dispatcher.emulator.server import Emulator
from dispatcher.emulator.transport import EmulatorTransport
from dispatcher.job.model import load_job
from dispatcher.ledger.sqlite import Ledger
from dispatcher.onenet.client import OneNetClient
from dispatcher.run.pacing import Pace
from dispatcher.run.runner import RunResult, run_job
from dispatcher.times import BEIJING
from tests.support.e2e import API_KEY, fast_settings
from tests.support.runs import VirtualTime

__all__ = ["Gated", "Sent", "gated_job", "poll_settings", "sent_by_device"]

BASE: Final = "http://emulator.test"


def gated_job(
    directory: Path,
    imeis: list[str],
    *,
    first: str = "wait: delivered",
    second: str = "wait: delivered",
    expired_time: str = "+2d",
    name: str = "fw.yaml",
    extra: str = "",
) -> Path:
    """A firmware update of three steps (write 5/0/1, execute 5/0/2, read 3/0/3) to ``imeis``;
    ``first`` and ``second``: the wait lines of steps 1 and 2 (a YAML line each, or "")."""
    targets = "".join(f"  - imei: '{i}'\n" for i in imeis)
    text = (
        f"job: {Path(name).stem}\n"
        "defaults:\n"
        "  obj_inst_id: 0\n"
        f"  expired_time: '{expired_time}'\n"
        "  trigger: [update]\n"
        f"{extra}"
        "steps:\n"
        "  - op: write\n"
        "    obj_id: 5\n"
        "    values: {1: 'coap://fw.example.com/2.4.1.bin'}\n"
        f"    {first}\n"
        "  - op: execute\n"
        "    obj_id: 5\n"
        "    res_id: 2\n"
        f"    {second}\n"
        "  - op: read\n"
        "    obj_id: 3\n"
        "    res_id: 3\n"
        f"targets:\n{targets}"
    )
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def poll_settings(poll_s: float = 60.0, **changes: Any) -> Settings:
    """Fast settings whose delivery polls are ``poll_s`` apart (virtual seconds)."""
    s = fast_settings(**changes)
    return dataclasses.replace(
        s, reliability=dataclasses.replace(s.reliability, delivery_poll_s=poll_s)
    )


@dataclass
class Gated:
    """An emulator with devices, on a virtual clock shared with the runs made against it."""

    fleet: Fleet = dataclasses.field(
        default_factory=lambda: Fleet(
            wake_every_s=600, wake_jitter=0.9, uplinks=((UPDATE, 1.0),), answer_delay_s=5, seed=4
        )
    )

    def __post_init__(self) -> None:
        self.time = VirtualTime()
        self.emulator = Emulator(clock=self.time, fleet=self.fleet)
        self.client = OneNetClient(EmulatorTransport(self.emulator), BASE, API_KEY)

    async def run(self, job: Path, ledger: Path, settings: Settings, **options: Any) -> RunResult:
        """One run of ``job`` into ``ledger``, on the shared virtual time."""
        vt = self.time
        pace = Pace(settings.limits.rate_per_second, clock=vt, sleep=vt.sleep)
        with Ledger.open(ledger, synchronous="normal") as store:
            return await run_job(
                load_job(job),
                self.client,
                store,
                settings,
                clock=vt,
                sleep=vt.sleep,
                pace=pace,
                **options,
            )


@dataclass(frozen=True)
class Sent:
    """One command as the emulator's history shows it."""

    type: str
    created: datetime
    send_status: int | None
    confirmed: datetime | None


async def sent_by_device(gated: Gated | Emulator, imeis: list[str]) -> dict[str, list[Sent]]:
    """Each device's commands as the emulator holds them, in the order it created them (its
    history, read through the real client)."""
    client = (
        gated.client
        if isinstance(gated, Gated)
        else OneNetClient(EmulatorTransport(gated), BASE, API_KEY)
    )
    start = datetime.fromtimestamp(0, BEIJING)
    found: dict[str, list[Sent]] = {}
    for imei in imeis:
        items = await client.history(imei, start)
        found[imei] = [
            Sent(i.type, i.create_time, i.send_status, i.confirm_time)
            for i in items
            if i.create_time is not None
        ]
    return found

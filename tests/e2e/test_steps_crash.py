"""Runs of a job whose steps wait for delivery, killed (SIGKILL) half-way and run again by the
same command line: each device is taken up where it was, its steps in order and each created
once at OneNET, every command ends accepted."""

from __future__ import annotations

import asyncio
import itertools
import signal
import sys
from pathlib import Path

from dispatcher.emulator.devices import UPDATE, Fleet
from dispatcher.emulator.server import Emulator, Faults, serve
from dispatcher.ledger.sqlite import Ledger
from dispatcher.ledger.store import Status
from tests.support.cli import process_env
from tests.support.e2e import API_KEY, CONFIG_YAML, count_status, fleet, write_config
from tests.support.gated import gated_job, sent_by_device

DEVICES = 24
POLL_S = 0.01  # between looks at the ledger's progress
FAST_FLEET = Fleet(
    wake_every_s=0.4, wake_jitter=0.5, uplinks=((UPDATE, 1.0),), answer_delay_s=0.05, seed=1
)
CONFIG = CONFIG_YAML.replace("reliability:\n", "reliability:\n  delivery_poll_s: 0.1\n")


async def test_a_gated_run_killed_twice_resumes_and_sends_each_step_once_in_order(
    tmp_path: Path,
) -> None:
    imeis = fleet(DEVICES)
    job = gated_job(tmp_path, imeis)
    ledger = tmp_path / "fw.db"
    emulator = Emulator(Faults(latency_ms=5, latency_jitter_ms=10, seed=3), fleet=FAST_FLEET)
    log = tmp_path / "stderr.log"
    async with asyncio.timeout(120), serve(emulator) as url:
        argv = [
            *(sys.executable, "-m", "dispatcher", "run", str(job)),
            *("--config", str(write_config(tmp_path, CONFIG)), "--base-url", url),
            *("--ledger", str(ledger), "--no-progress"),
        ]

        async def start() -> asyncio.subprocess.Process:
            with log.open("ab") as err:
                return await asyncio.create_subprocess_exec(
                    *argv, env=process_env(API_KEY), stdout=asyncio.subprocess.DEVNULL, stderr=err
                )

        for accepted in (DEVICES + 3, 2 * DEVICES + 3):  # in step 2, then in step 3
            proc = await start()
            while count_status(ledger, Status.ACCEPTED) < accepted:
                assert proc.returncode is None, log.read_text()
                await asyncio.sleep(POLL_S)
            proc.send_signal(signal.SIGKILL)
            assert await proc.wait() == -signal.SIGKILL
        proc = await start()
        code = await proc.wait()
        sent = await sent_by_device(emulator, imeis)

    assert code == 0, log.read_text()
    for imei in imeis:
        made = sent[imei]
        assert [s.type for s in made] == ["WRITE", "EXECUTE", "READ"], made  # each once
        for before, after in itertools.pairwise(made):
            assert before.send_status == 5 and before.confirmed is not None
            assert after.created >= before.confirmed
    with Ledger.open(ledger, read_only=True) as store:
        assert {r.status for r in store.rows()} == {Status.ACCEPTED}
    assert emulator.stats()["duplicates"] == 0

"""A retry of the stragglers of a job with steps, end to end against the emulator: the retry job
sends each step a device did not finish once, in order, and nothing it finished; neither the
original job run again nor a second retry sends anything of it."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

from dispatcher.emulator import Device
from dispatcher.emulator.server import Emulator, Faults, StoredCommand, serve
from dispatcher.job.model import load_job
from dispatcher.ledger.sqlite import Ledger
from dispatcher.ledger.store import Delivery
from tests.support.cli import dispatcher_async, invoke
from tests.support.e2e import fleet, imei
from tests.support.retry import T
from tests.support.retry_steps import write_steps_job

# The steps of tests/support/retry_steps.py's job, as the emulator stores them.
STEP = {("WRITE", 5, None): 1, ("EXECUTE", 5, 2): 2, ("READ", 3, 3): 3}


def step_of(c: StoredCommand) -> int:
    return STEP[c.type, c.obj_id, c.res_id]


async def test_a_retry_of_the_stragglers_sends_each_missing_step_once_and_nothing_twice(
    tmp_path: Path,
) -> None:
    devices = fleet(5, start=900)
    finished, expired, failed, rejected, open_ = devices
    write_steps_job(tmp_path / "fw.yaml", devices, rollout=False)
    ledger_path = tmp_path / "fw.yaml.ledger.db"
    # One device is not in the product yet: its step 1 is rejected, steps 2 and 3 held back.
    emulator = Emulator(Faults(foreign_imeis=frozenset({rejected})))
    async with serve(emulator) as url:
        first = await dispatcher_async(
            "run", "fw.yaml", "--base-url", url, "--rate", "0", cwd=tmp_path
        )
        assert first.code == 3, first.stderr
        # The run ends by saying what was held back, then (as every command ends) the command
        # that retries it.
        assert (
            "2 commands were not sent (held back after a step before them did not get through,"
            " or skipped by a rollout rule)" in first.stderr
        )
        assert (
            "next: dispatcher retry-failed fw.yaml.ledger.db -o fw-retry.yaml   (3 commands did"
            " not get through" in first.stderr
        )
        assert len(emulator.accepted()) == 12  # every step of the four others
        # What `dispatcher status` reads: one device ran every step, one never woke, one failed
        # step 2 on the device (and so step 3), one has step 3 still waiting.
        sends = {finished: (5, 5, 5), expired: (4, 4, 4), failed: (5, 6, 6), open_: (5, 5, 1)}
        with Ledger.open(ledger_path) as ledger:
            read = [(r.key, sends[r.command.imei][r.command.step - 1]) for r in ledger.rows()
                    if r.command.imei in sends]  # fmt: skip
            ledger.record_delivery([Delivery(k, n, None, None, None, None, T) for k, n in read])
        made = invoke("retry-failed", ledger_path, "-o", tmp_path / "retry.yaml")
        assert made.exit_code == 0, made.stderr
        assert invoke("validate", tmp_path / "retry.yaml").exit_code == 0

        before = len(emulator.accepted())
        emulator.faults = Faults()  # the device joined the product
        retry = await dispatcher_async(
            "run", "retry.yaml", "--base-url", url, "--rate", "0", cwd=tmp_path
        )
        assert retry.code == 0, retry.stderr
        arrived = emulator.accepted()[before:]

        # Neither the original job run again nor a second retry sends anything.
        again = await dispatcher_async(
            "run", "fw.yaml", "--base-url", url, "--rate", "0", cwd=tmp_path
        )
        second = invoke("retry-failed", ledger_path, "-o", tmp_path / "retry2.yaml")
        total = len(emulator.accepted())

    sent = Counter((c.imei, step_of(c)) for c in arrived)
    assert sent == Counter(
        [(expired, 1), (expired, 2), (expired, 3), (failed, 2), (failed, 3),
         (rejected, 1), (rejected, 2), (rejected, 3)]
    )  # fmt: skip
    # A device's steps arrive in order: each once the one before was accepted.
    for device in (expired, failed, rejected):
        assert [step_of(c) for c in arrived if c.imei == device] == sorted(
            step_of(c) for c in arrived if c.imei == device
        )
    # The retried steps are the job's: the same ids, values and delivery options.
    originals = {(c.imei, step_of(c)): c for c in emulator.accepted()[:before]}
    for c in arrived:
        was = originals.get((c.imei, step_of(c)))
        if was is not None:
            assert (c.args, c.retry, c.timeout, c.trigger_msg, c.mode) == (
                was.args, was.retry, was.timeout, was.trigger_msg, was.mode,
            )  # fmt: skip
    assert again.code == 0, again.stderr
    assert second.exit_code == 0 and not (tmp_path / "retry2.yaml").exists()
    assert total == before + len(arrived)


async def test_the_stragglers_of_a_job_whose_targets_came_from_a_query_are_listed_as_targets(
    tmp_path: Path,
) -> None:
    north = [imei(n) for n in range(40, 44)]
    (tmp_path / "fw.yaml").write_text(
        "job: fw\n"
        "defaults: {obj_inst_id: 0, expired_time: +2d}\n"
        "steps:\n"
        '  - {op: write, obj_id: 5, values: {1: "coap://fw.example/2.4.1.bin"}}\n'
        "  - {op: execute, obj_id: 5, res_id: 2}\n"
        "targets_query: {tag: north}\n",
        encoding="utf-8",
    )
    created = time.time() - 86400
    emulator = Emulator(
        Faults(foreign_imeis=frozenset({north[1]})),
        devices=[Device(i, created, tags=("north",)) for i in north],
    )
    async with serve(emulator) as url:
        first = await dispatcher_async(
            "run", "fw.yaml", "--base-url", url, "--rate", "0", "--yes", cwd=tmp_path
        )
    assert first.code == 3, first.stderr

    made = invoke("retry-failed", tmp_path / "fw.yaml.ledger.db", "-o", tmp_path / "retry.yaml")

    assert made.exit_code == 0, made.stderr
    text = (tmp_path / "retry.yaml").read_text("utf-8")
    assert "\ntargets_query:" not in text
    retry = load_job(tmp_path / "retry.yaml")
    assert [(t.values[0], t.from_step) for t in retry.targets] == [(north[1], 1)]
    assert invoke("validate", tmp_path / "retry.yaml").exit_code == 0

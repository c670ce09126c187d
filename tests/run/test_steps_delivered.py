"""A job whose steps wait for delivery, run against the emulator's devices on virtual time: a
device's next step is created at OneNET only after its step before was delivered, each device
moving on by itself; a step that expires, fails or is not delivered in time holds the device's
later steps back with the reason."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from dispatcher.emulator.devices import UPDATE, Fleet
from dispatcher.ledger.sqlite import Ledger
from dispatcher.ledger.store import Row, Status
from tests.support.e2e import fleet
from tests.support.gated import Gated, Sent, gated_job, poll_settings, sent_by_device


async def test_each_step_is_created_only_after_the_step_before_was_delivered(
    tmp_path: Path,
) -> None:
    imeis = fleet(6)
    gated = Gated()
    job = gated_job(tmp_path, imeis)
    result = await gated.run(job, tmp_path / "fw.db", poll_settings())
    assert result.stop_reason is None
    sent = await sent_by_device(gated, imeis)
    for imei in imeis:
        write, execute, read = sent[imei]
        assert (write.type, execute.type, read.type) == ("WRITE", "EXECUTE", "READ")
        assert write.confirmed is not None and execute.confirmed is not None
        assert execute.created >= write.confirmed
        assert read.created >= execute.confirmed
    with Ledger.open(tmp_path / "fw.db", read_only=True) as ledger:
        assert {r.status for r in ledger.rows()} == {Status.ACCEPTED}


def _ledger_rows(path: Path) -> dict[tuple[str, int], Row]:
    with Ledger.open(path, read_only=True) as ledger:
        return {(r.command.imei, r.command.step): r for r in ledger.rows()}


def _check_gating(sent: dict[str, list[Sent]], rows: dict[tuple[str, int], Row]) -> None:
    """OneNET's own record: a device's step k+1 exists only if its step k was delivered
    (send_status 5) no later than step k+1's creation; the ledger holds the rest back."""
    for imei, made in sent.items():
        for k, (before, after) in enumerate(itertools.pairwise(made), 1):
            assert before.send_status == 5, (imei, k, before)
            assert before.confirmed is not None and after.created >= before.confirmed
        stopped = len(made)  # the steps OneNET holds; the device's later steps are held back
        assert stopped >= 1  # step 1 goes to every device
        if stopped < 3:
            assert made[-1].send_status in (4, 6), (imei, made[-1])  # expired, or failed
            for step in range(stopped + 1, 4):
                row = rows[imei, step]
                assert row.status is Status.SKIPPED, (imei, step, row)
                assert row.error.startswith(f"held back: step {stopped} ("), row.error


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    never_wake=st.sampled_from([0.0, 0.3]),
    device_errors=st.sampled_from([0.0, 0.3]),
    jitter=st.floats(0.0, 1.0),
)
async def test_no_step_is_created_before_the_step_before_was_delivered(
    tmp_path_factory: pytest.TempPathFactory,
    seed: int,
    never_wake: float,
    device_errors: float,
    jitter: float,
) -> None:
    tmp = tmp_path_factory.mktemp("gated")
    imeis = fleet(5)
    devices = Fleet(
        wake_every_s=900,
        wake_jitter=jitter,
        never_wake=never_wake,
        device_errors=device_errors,
        uplinks=((UPDATE, 1.0),),
        answer_delay_s=5,
        seed=seed,
    )
    gated = Gated(devices)
    job = gated_job(tmp, imeis, expired_time="+3h")
    result = await gated.run(job, tmp / "fw.db", poll_settings(120.0))
    assert result.stop_reason is None
    _check_gating(await sent_by_device(gated, imeis), _ledger_rows(tmp / "fw.db"))


async def test_a_device_whose_write_expires_is_held_back_and_never_gets_the_update(
    tmp_path: Path,
) -> None:
    imeis = fleet(8)
    devices = Fleet(
        wake_every_s=900, never_wake=0.5, uplinks=((UPDATE, 1.0),), answer_delay_s=5, seed=3
    )
    gated = Gated(devices)
    job = gated_job(tmp_path, imeis, expired_time="+2h")
    notes: list[str] = []
    await gated.run(job, tmp_path / "fw.db", poll_settings(), inform=notes.append)
    sent = await sent_by_device(gated, imeis)
    asleep = [i for i in imeis if sent[i][0].send_status == 4]
    assert 0 < len(asleep) < len(imeis)  # the seed puts some of them to sleep for good
    rows = _ledger_rows(tmp_path / "fw.db")
    for imei in asleep:
        assert [s.type for s in sent[imei]] == ["WRITE"]  # the execute never went out
        write = rows[imei, 1]
        expired = (write.sent_expired_time or "").replace("T", " ")
        for step in (2, 3):
            assert rows[imei, step].status is Status.SKIPPED
            assert rows[imei, step].error == (
                f"held back: step 1 (write 5/0/1) expired at {expired} (UTC+8), not delivered"
            )
    awake = [i for i in imeis if i not in asleep]
    assert all(rows[i, 3].status is Status.ACCEPTED for i in awake)
    steps = [n for n in notes if n.startswith("steps: ")]
    assert steps[-1].endswith(f" {len(awake) * 2:,} steps moved on, {len(asleep) * 2:,} held back")


async def test_a_step_the_device_fails_holds_its_later_steps_back(tmp_path: Path) -> None:
    imeis = fleet(3)
    devices = Fleet(
        wake_every_s=900, device_errors=1.0, uplinks=((UPDATE, 1.0),), answer_delay_s=5, seed=2
    )
    gated = Gated(devices)
    await gated.run(gated_job(tmp_path, imeis), tmp_path / "fw.db", poll_settings())
    sent = await sent_by_device(gated, imeis)
    rows = _ledger_rows(tmp_path / "fw.db")
    for imei in imeis:
        assert [(s.type, s.send_status) for s in sent[imei]] == [("WRITE", 6)]
        why = rows[imei, 2].error
        assert why.startswith(
            "held back: step 1 (write 5/0/1) failed on the device (send_status 6, "
        )
        assert (rows[imei, 2].status, rows[imei, 3].status) == (Status.SKIPPED, Status.SKIPPED)
        assert rows[imei, 3].error == why


async def test_a_step_not_delivered_within_its_timeout_holds_the_next_back(
    tmp_path: Path,
) -> None:
    imeis = fleet(4)
    devices = Fleet(wake_every_s=3 * 3600, wake_jitter=0.0, uplinks=((UPDATE, 1.0),), seed=5)
    gated = Gated(devices)
    job = gated_job(tmp_path, imeis, first="wait: {until: delivered, timeout: 20m}")
    await gated.run(job, tmp_path / "fw.db", poll_settings())
    sent = await sent_by_device(gated, imeis)
    rows = _ledger_rows(tmp_path / "fw.db")
    late = [i for i in imeis if rows[i, 2].status is Status.SKIPPED]
    assert late  # devices that wake hours apart: most are not there within 20 minutes
    for imei in late:
        assert [s.type for s in sent[imei]] == ["WRITE"]
        assert rows[imei, 2].error == "held back: step 1 (write 5/0/1) not delivered within 20m"
    for imei in set(imeis) - set(late):
        write, execute, *_ = sent[imei]
        assert write.confirmed is not None and execute.created >= write.confirmed


async def test_wait_delivered_on_the_last_step_follows_it_to_its_delivery(
    tmp_path: Path,
) -> None:
    imeis = fleet(3)
    gated = Gated()
    job = gated_job(tmp_path, imeis, second="wait: accepted", extra="  wait: delivered\n")
    await gated.run(job, tmp_path / "fw.db", poll_settings())
    rows = _ledger_rows(tmp_path / "fw.db")
    assert {rows[i, 3].send_status for i in imeis} == {5}  # the read's delivery was read
    assert {rows[i, 3].cmd_result for i in imeis} == {"2.4.1"}


async def test_devices_move_on_while_step_1_is_still_going_out(tmp_path: Path) -> None:
    imeis = fleet(30)
    devices = Fleet(wake_every_s=60, wake_jitter=0.5, uplinks=((UPDATE, 1.0),), seed=8)
    gated = Gated(devices)
    # A call every 10 seconds, 4 at a time: step 1 takes minutes, the devices wake every minute.
    slow = poll_settings(20.0, rate=0.1, adaptive=False, concurrency=4)
    await gated.run(gated_job(tmp_path, imeis), tmp_path / "fw.db", slow)
    sent = await sent_by_device(gated, imeis)
    last_write = max(sent[i][0].created for i in imeis)
    first_update = min(sent[i][1].created for i in imeis)
    assert first_update < last_write  # not a whole step at a time
    _check_gating(sent, _ledger_rows(tmp_path / "fw.db"))

"""Steps gated on delivery across runs and rollouts: a run stopped half-way is taken up by the
next where each device was (nothing sent twice), and a canary's devices go through their steps
gated the same way, before the rest of the fleet gets any."""

from __future__ import annotations

import itertools
from collections import Counter
from pathlib import Path

from dispatcher.emulator.devices import Fleet
from dispatcher.job.plan import Canary, Rollout
from dispatcher.ledger.sqlite import Ledger
from dispatcher.ledger.store import Status
from dispatcher.run.state import Stop
from tests.support.e2e import fleet
from tests.support.gated import Gated, Sent, gated_job, poll_settings, sent_by_device


def _in_order(made: list[Sent]) -> bool:
    """Each step created no earlier than its step before was delivered."""
    return all(
        b.send_status == 5 and b.confirmed is not None and a.created >= b.confirmed
        for b, a in itertools.pairwise(made)
    )


async def test_a_run_stopped_half_way_is_resumed_and_sends_nothing_twice(
    tmp_path: Path,
) -> None:
    imeis = fleet(6)
    gated = Gated()
    job = gated_job(tmp_path, imeis)
    ledger = tmp_path / "fw.db"
    stop = Stop()

    def stop_once_some_moved_on(note: str) -> None:
        if note.startswith("steps: ") and " 0 steps moved on" not in note:
            stop.request("stopped by the test")

    first = await gated.run(job, ledger, poll_settings(), stop=stop, inform=stop_once_some_moved_on)
    assert first.stop_reason == "stopped by the test"
    half = await sent_by_device(gated, imeis)
    assert 0 < sum(len(made) for made in half.values()) < 3 * len(imeis)
    second = await gated.run(job, ledger, poll_settings())
    assert second.stop_reason is None
    sent = await sent_by_device(gated, imeis)
    for imei in imeis:
        assert [s.type for s in sent[imei]] == ["WRITE", "EXECUTE", "READ"]  # each once
        assert _in_order(sent[imei]), sent[imei]
    with Ledger.open(ledger, read_only=True) as store:
        assert Counter(r.status for r in store.rows()) == {Status.ACCEPTED: 3 * len(imeis)}
    assert gated.emulator.stats()["duplicates"] == 0


async def test_a_canary_device_gets_its_steps_gated_before_the_fleet_gets_any(
    tmp_path: Path,
) -> None:
    imeis = fleet(6)
    gated = Gated()
    job = gated_job(tmp_path, imeis)
    rollout = Rollout(canary=Canary(size=2))
    result = await gated.run(job, tmp_path / "fw.db", poll_settings(), rollout=rollout)
    assert result.stop_reason is None
    sent = await sent_by_device(gated, imeis)
    assert all(_in_order(sent[i]) and len(sent[i]) == 3 for i in imeis)
    first_write = min(sent[i][0].created for i in imeis)
    canary = [i for i in imeis if sent[i][0].created == first_write]
    assert len(canary) == 2
    rest_start = min(sent[i][0].created for i in imeis if i not in canary)
    assert all(sent[i][2].created <= rest_start for i in canary)  # each of its steps first


async def test_a_resumed_run_counts_the_wait_from_the_steps_acceptance(tmp_path: Path) -> None:
    imeis = fleet(2)
    gated = Gated(Fleet(wake_every_s=600, never_wake=1.0, seed=1))  # nobody ever wakes
    job = gated_job(tmp_path, imeis, first="wait: {until: delivered, timeout: 1h}")
    ledger = tmp_path / "fw.db"
    stop = Stop()

    def stop_once_both_wait(note: str) -> None:
        if note.startswith("steps: 2 devices waiting for a delivery"):
            stop.request("stopped")

    first = await gated.run(job, ledger, poll_settings(), stop=stop, inform=stop_once_both_wait)
    assert first.stop_reason == "stopped"
    gated.time.now += 3600  # an hour with no run: the writes were accepted an hour ago
    notes: list[str] = []
    resumed = gated.time.now
    await gated.run(job, ledger, poll_settings(), inform=notes.append)
    steps = [n for n in notes if n.startswith("steps: ")]
    assert steps[-1].endswith(", 4 held back")
    # Held back once the state read after the restart says not delivered, not an hour later.
    assert gated.time.now - resumed <= 2 * 60  # a poll or two (poll_settings: 60 s)
    with Ledger.open(ledger, read_only=True) as store:
        later = [r for r in store.rows() if r.command.step > 1]
    assert {r.error for r in later} == {"held back: step 1 (write 5/0/1) not delivered within 1h"}
    assert all(len(made) == 1 for made in (await sent_by_device(gated, imeis)).values())

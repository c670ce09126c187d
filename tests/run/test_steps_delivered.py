"""A job whose steps wait for delivery, run against the emulator's devices on virtual time: a
device's next step is created at OneNET only after its step before was delivered, each device
moving on by itself; a step that expires, fails or is not delivered in time holds the device's
later steps back with the reason."""

from __future__ import annotations

from pathlib import Path

from dispatcher.ledger.sqlite import Ledger
from dispatcher.ledger.store import Status
from tests.support.e2e import fleet
from tests.support.gated import Gated, gated_job, poll_settings, sent_by_device


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

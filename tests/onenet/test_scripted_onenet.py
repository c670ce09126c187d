"""The scripted OneNET the run's tests use (tests/support/scripted.py) says what the emulator
says: the same execute, history and detail, read by the real client, so that a test over it
proves what a run against OneNET would do."""

from __future__ import annotations

from datetime import UTC, datetime

from dispatcher.emulator.server import Emulator
from dispatcher.emulator.transport import EmulatorTransport
from dispatcher.onenet.client import OfflineRequest, OneNetClient, Verdict
from tests.support.onenet import offline
from tests.support.scripted import Lost, ScriptedOneNet

IMEI = "861234567890123"
START = datetime(2000, 1, 1, tzinfo=UTC)


def execute(args: str | None = "reboot") -> OfflineRequest:
    """An execute of ``args`` to IMEI, expiring in 2030, on a REGISTER or an UPDATE."""
    return offline(
        imei=IMEI, obj_id=3200, obj_inst_id=0, res_id=5750, expired_time="2030-01-03T00:00:00",
        args=args, retry=2, timeout=30, trigger_msg=3,
    )  # fmt: skip


async def test_the_scripted_onenet_lists_and_details_a_command_as_the_emulator_does() -> None:
    scripted = ScriptedOneNet()
    emulated = OneNetClient(EmulatorTransport(Emulator()), "http://emulator.test", "k")
    seen = []
    for client in (scripted.client, emulated):
        outcome = await client.create(execute())
        (item,) = await client.history(IMEI, START)
        detail = await client.detail(IMEI, item.uuid)
        assert outcome.verdict is Verdict.ACCEPTED and item.uuid == outcome.uuid
        seen.append(
            (item.type, item.imei, item.expired_time, item.send_status, item.trigger_msg,
             detail["args"], detail["type"])
        )  # fmt: skip
    assert seen[0] == seen[1]


async def test_a_lost_answer_is_in_doubt_and_the_command_is_listed_only_if_it_was_stored() -> None:
    onenet = ScriptedOneNet({IMEI: [Lost(created=True), Lost(created=False)]})
    stored = await onenet.client.create(execute())
    never = await onenet.client.create(execute("other"))
    assert (stored.verdict, never.verdict) == (Verdict.IN_DOUBT, Verdict.IN_DOUBT)
    assert stored.error.startswith("answer lost: ServerDisconnectedError")
    assert [i.uuid for i in await onenet.client.history(IMEI, START)] == list(onenet.commands)
    assert onenet.created_per_imei() == {IMEI: 1} and onenet.sent_imeis() == [IMEI, IMEI]

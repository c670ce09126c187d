"""Verify by datapoints through the real client over a scripted OneNET (Routes): each device's id
asked once by IMEI and kept in the ledger, the latest datapoints read 500 devices a call, a device
the platform does not know never seen with why, a datapoints call that fails kept as unreadable,
and no command ever sent to a device."""

from __future__ import annotations

import json
import re
from urllib.parse import parse_qs, urlsplit

from dispatcher.job.verifyspec import VerifySource, VerifySpec
from dispatcher.ledger.memory import MemoryLedger
from dispatcher.ledger.store import InFlight, Status, VerifyState
from dispatcher.ledger.targets import FrozenTarget
from dispatcher.onenet import Request, Response
from dispatcher.onenet.client import OneNetClient
from dispatcher.run.lane import Lane
from dispatcher.run.state import Stop
from dispatcher.run.verify_rounds import Verifier, VerifyLane
from tests.support.e2e import fast_settings
from tests.support.ledger import make_command
from tests.support.onenet import Routes
from tests.support.stores import in_flight, result_of

SPEC = VerifySpec(3, 0, 3, ("2.4.1",), VerifySource.DATAPOINTS)
BASE = "http://onenet.test"


def _ok(data: object) -> Response:
    return Response(200, json.dumps({"errno": 0, "error": "succ", "data": data}).encode(), {})


def _fleet(n: int) -> MemoryLedger:
    """A ledger of one accepted command on each of ``n`` devices."""
    ledger = MemoryLedger()
    for i in range(n):
        cmd = make_command(i)
        ledger.register([cmd])
        ledger.write_batch([in_flight(cmd.key)], [result_of(cmd.key, Status.ACCEPTED)])
    return ledger


class Platform:
    """The legacy platform's device calls: ids ``d<imei>``, IMEIs in ``unknown`` answered errno
    (no such device), each device reading ``versions`` (default 2.4.1)."""

    def __init__(
        self, unknown: frozenset[str] = frozenset(), versions: dict[str, str] | None = None
    ) -> None:
        self.unknown, self.versions = unknown, versions or {}
        self.routes = Routes()
        self.routes.get(
            re.compile(rf"{BASE}/devices/getbyimei\?.*"), callback=self.getbyimei, repeat=True
        )
        self.routes.get(
            re.compile(rf"{BASE}/devices/datapoints\?.*"), callback=self.datapoints, repeat=True
        )
        self.chunks: list[int] = []

    def getbyimei(self, request: Request) -> Response:
        (imei,) = parse_qs(urlsplit(request.url).query)["imei"]
        if imei in self.unknown:
            return Response(200, b'{"errno": 3, "error": "device not exist"}', {})
        return _ok({"id": int("9" + imei[-6:]), "online": False})

    def datapoints(self, request: Request) -> Response:
        (ids,) = parse_qs(urlsplit(request.url).query)["devIds"]
        chunk = ids.split(",")
        self.chunks.append(len(chunk))
        at = "2026-12-06 10:00:00.123"
        devices = [
            {"id": int(i), "title": "", "datastreams": [
                {"id": "3_0_2", "at": at, "value": "serial"},
                {"id": "3_0_3", "at": at, "value": self.versions.get(i, "2.4.1")},
            ]}
            for i in chunk
        ]  # fmt: skip
        return _ok({"devices": devices})

    def verifier(self, ledger: MemoryLedger) -> Verifier:
        settings = fast_settings()
        client = OneNetClient(self.routes.transport, BASE, "key")
        lane = VerifyLane(Lane.of(client, settings), client, settings)
        return Verifier(SPEC, ledger, {None: lane}, Stop(), lambda: 0.0)

    def asked(self, path: str) -> int:
        return sum(1 for r in self.routes.sent if urlsplit(r.url).path == path)


async def test_ids_are_asked_once_and_values_read_500_devices_a_call() -> None:
    ledger = _fleet(1001)
    platform = Platform(versions={"9000007": "2.3.0"})
    verifier = platform.verifier(ledger)
    first = await verifier.run(watch=False, interval_s=0)
    assert platform.chunks == [500, 500, 1]
    assert platform.asked("/devices/getbyimei") == 1001
    assert len(ledger.device_ids()) == 1001
    counts = first.counts()
    assert (counts[VerifyState.ON_TARGET], counts[VerifyState.NOT_YET]) == (1000, 1)
    (behind,) = [r for r in first.results if r.state is VerifyState.NOT_YET]
    assert (behind.imei, behind.value) == ("860000000000007", "2.3.0")
    assert behind.read_at is not None and behind.source == "datapoints"
    await verifier.run(watch=False, interval_s=0)  # the ids are kept: asked no more
    assert platform.asked("/devices/getbyimei") == 1001
    assert (verifier.calls.getbyimei, verifier.calls.datapoints) == (1001, 6)
    assert not [r for r in platform.routes.sent if "/nbiot" in r.url]  # nothing sent to devices
    assert ledger.verify_results() == first.results


async def test_the_frozen_fleets_ids_are_taken_and_only_the_others_looked_up() -> None:
    ledger = _fleet(3)
    ledger.freeze_targets(
        [FrozenTarget("860000000000000", "9000000"), FrozenTarget("860000000000001", "")]
    )
    platform = Platform()
    result = await platform.verifier(ledger).run(watch=False, interval_s=0)
    asked = [r.url for r in platform.routes.sent if "getbyimei" in r.url]
    assert [u.rsplit("=", 1)[1] for u in asked] == ["860000000000001", "860000000000002"]
    assert {r.state for r in result.results} == {VerifyState.ON_TARGET}


async def test_a_device_the_platform_does_not_know_is_never_seen_with_why() -> None:
    ledger = _fleet(2)
    platform = Platform(unknown=frozenset({"860000000000001"}))
    result = await platform.verifier(ledger).run(watch=False, interval_s=0)
    states = {r.imei: (r.state, r.reason) for r in result.results}
    assert states["860000000000000"] == (VerifyState.ON_TARGET, "")
    state, why = states["860000000000001"]
    assert state is VerifyState.NEVER_SEEN
    assert "the platform has no device of this IMEI" in why and "errno 3" in why
    assert result.unreadable == 0


async def test_datapoints_that_cannot_be_read_leave_the_devices_unreadable() -> None:
    ledger = _fleet(2)
    platform = Platform()
    platform.routes = Routes()
    platform.routes.get(
        re.compile(rf"{BASE}/devices/getbyimei\?.*"), callback=platform.getbyimei, repeat=True
    )
    platform.routes.get(
        re.compile(rf"{BASE}/devices/datapoints\?.*"), status=500, body="oops", repeat=True
    )
    result = await platform.verifier(ledger).run(watch=False, interval_s=0)
    assert result.unreadable == 2
    assert {r.state for r in result.results} == {VerifyState.NEVER_SEEN}
    assert all("its datapoints could not be read" in r.reason for r in result.results)


def _open_fleet(n: int) -> MemoryLedger:
    """``n`` devices, each with one accepted command whose window is still open (until 2030)."""
    ledger = MemoryLedger()
    for i in range(n):
        cmd = make_command(i)
        ledger.register([cmd])
        mark = InFlight(cmd.key, 1000.0, None, "2030-01-01T00:00:00", 1)
        ledger.write_batch([mark], [result_of(cmd.key, Status.ACCEPTED)])
    return ledger


async def test_watch_repeats_rounds_until_every_device_is_on_target() -> None:
    platform = Platform(versions={"9000000": "2.3.0"})
    verifier = platform.verifier(_open_fleet(2))
    rounds: list[dict[VerifyState, int]] = []
    verifier.on_round = lambda n, r: rounds.append(r.counts())

    async def sleep(_: float) -> None:
        platform.versions.clear()  # the device reports its new version meanwhile

    verifier.sleep = sleep
    last = await verifier.run(watch=True, interval_s=60)
    assert [r[VerifyState.ON_TARGET] for r in rounds] == [1, 2]
    assert last.final and verifier.rounds == 2


async def test_watch_stopped_while_waiting_keeps_the_last_round() -> None:
    platform = Platform(versions={"9000000": "2.3.0"})
    verifier = platform.verifier(_open_fleet(2))

    async def sleep(_: float) -> None:
        verifier.stop.request("test")

    verifier.sleep = sleep
    last = await verifier.run(watch=True, interval_s=60)
    assert verifier.rounds == 1 and not last.final
    assert last.counts()[VerifyState.NOT_YET] == 1

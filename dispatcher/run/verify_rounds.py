"""Rounds of ``dispatcher verify``: each device's value read (from the job's read commands, or
from the legacy platform's latest datapoints), every device judged (verify.py) and the verdicts
written to the ledger; with ``watch``, rounds until every device is final.

Source ``command``: the job's read commands of the resource still open are read as ``status``
reads them (status.py's ``read_round``: one history page per device, a detail for an answered
command, paced and retried on the lane), their ``cmd_result`` kept in the ledger. Source
``datapoints``: each device's platform id (from the job's frozen fleet when it had a
``targets_query``, else kept in the ledger after the first ``GET /devices/getbyimei``), then
``GET /devices/datapoints`` for 500 ids a call; nothing is sent to a device. Every call takes a
slot of its lane's pace and is counted (``VerifyCalls``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from dispatcher.config import Settings
from dispatcher.errors import OneNetUnavailable
from dispatcher.job.verifyspec import VerifySource, VerifySpec
from dispatcher.ledger.store import LedgerStore, Row
from dispatcher.ledger.verify import VerifyResult, VerifyState
from dispatcher.onenet.datapoints import MAX_IDS, Datapoint, DevicesClient, datapoints, device_id
from dispatcher.run.fanout import fan_out
from dispatcher.run.lane import Lane
from dispatcher.run.retrying import retry_query
from dispatcher.run.state import Stop
from dispatcher.run.status import delivery_writer, read_round
from dispatcher.run.verify import Device, Reading, command_reading, devices_of, judge, reads_it

__all__ = ["Verifier", "VerifyCalls", "VerifyLane", "VerifyRound"]

T = TypeVar("T")


@dataclass(slots=True)
class VerifyCalls:
    """The calls a verify made, by kind."""

    history_pages: int = 0  # source command: history pages read
    details: int = 0  # and command details
    getbyimei: int = 0  # source datapoints: device ids looked up
    datapoints: int = 0  # and datapoint pages (500 devices each)
    probes: int = 0  # each lane's first call: its key, address and OneNET's clock

    @property
    def total(self) -> int:
        """Every call made."""
        return self.history_pages + self.details + self.getbyimei + self.datapoints + self.probes


@dataclass(slots=True)
class VerifyRound:
    """One round: every device's verdict, whether all are final, what could not be read."""

    results: list[VerifyResult] = field(default_factory=list)
    final: bool = False  # every device on target or failed, or past its deadline
    unreadable: int = 0  # devices (or commands) whose value could not be read this round
    last_error: str = ""

    def counts(self) -> dict[VerifyState, int]:
        """Devices by state (every state present, in StrEnum order)."""
        found = dict.fromkeys(VerifyState, 0)
        for r in self.results:
            found[r.state] += 1
        return found


@dataclass(frozen=True, slots=True)
class VerifyLane:
    """A product's lane for verify: its pace and client, and its settings."""

    lane: Lane
    client: DevicesClient
    settings: Settings


@dataclass(slots=True)
class Verifier:
    """The rounds of one verify (module docstring) over ``lanes`` (by product; None: one lane
    for every product)."""

    spec: VerifySpec
    ledger: LedgerStore
    lanes: dict[str | None, VerifyLane]
    stop: Stop
    clock: Callable[[], float]
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    on_round: Callable[[int, VerifyRound], None] | None = None
    calls: VerifyCalls = field(default_factory=VerifyCalls)
    rounds: int = 0

    def lane_of(self, product: str) -> VerifyLane:
        """The lane a product's devices are read through."""
        return self.lanes.get(product) or self.lanes[None]

    async def run(self, *, watch: bool, interval_s: float) -> VerifyRound:
        """One round, or (``watch``) rounds ``interval_s`` apart until every device is final
        or a stop; the last round."""
        while True:
            result = await self.round()
            self.rounds += 1
            if self.on_round is not None:
                self.on_round(self.rounds, result)
            if not watch or result.final or self.stop.requested:
                return result
            await self.stop.sleeper(self.sleep)(interval_s)
            if self.stop.requested:  # stopped while waiting: the last round stands
                return result

    async def round(self) -> VerifyRound:
        """Read every device's value, judge it, and record the verdicts."""
        result = VerifyRound()
        notes: dict[str, str] = {}
        if self.spec.source is VerifySource.COMMAND:
            await self._read_commands(result)
            devices = devices_of(self.ledger.rows(retired=False))
            readings = {(d.imei, d.product): command_reading(d, self.spec) for d in devices}
        else:
            devices = devices_of(self.ledger.rows(retired=False))
            readings = await self._read_datapoints(devices, result, notes)
        finals = []
        for device in devices:
            now = self.lane_of(device.product).lane.clock.now()
            reading = readings.get((device.imei, device.product))
            verdict, final = judge(device, self.spec, reading, now, notes.get(device.imei, ""))
            result.results.append(verdict)
            finals.append(final)
        result.final = all(finals)
        self.ledger.record_verify(result.results)
        return result

    async def _read_commands(self, result: VerifyRound) -> None:
        """The delivery of the open reads of the resource, read into the ledger."""
        by_product: dict[str, list[Row]] = {}
        for row in self.ledger.rows_to_check():
            if row.retired is None and reads_it(self.spec, row):
                by_product.setdefault(row.command.product, []).append(row)
        for product, rows in sorted(by_product.items()):
            lane = self.lane_of(product)
            read = await read_round(
                rows, lane.lane, delivery_writer(self.ledger), lane.settings,
                stop=self.stop, clock=self.clock, sleep=self.sleep,
            )  # fmt: skip
            self.calls.history_pages += read.history_pages
            self.calls.details += read.details
            result.unreadable += len(read.unreadable)
            result.last_error = read.gave_up or read.last_error or result.last_error

    async def _read_datapoints(
        self, devices: list[Device], result: VerifyRound, notes: dict[str, str]
    ) -> dict[tuple[str, str], Reading | None]:
        """Each device's latest datapoint of the resource, by (imei, product)."""
        # A job of a targets_query froze its devices with their ids; the others' ids are the
        # ones an earlier verify looked up by IMEI.
        ids = {t.imei: t.device_id for t in self.ledger.frozen_targets() if t.device_id}
        ids.update(self.ledger.device_ids())
        missing = [d for d in devices if d.imei not in ids]
        found: dict[str, str] = {}

        async def look_up(device: Device) -> None:
            lane = self.lane_of(device.product)
            try:
                found[device.imei] = await self._ask(lane, self._counted_id(lane, device.imei))
            except OneNetUnavailable as exc:
                if exc.errno is not None and not exc.retryable:
                    notes[device.imei] = f"the platform has no device of this IMEI ({exc})"
                else:
                    result.unreadable += 1
                    notes[device.imei] = f"its device id could not be read ({exc})"
                result.last_error = str(exc)

        workers = max(1, min(v.settings.limits.concurrency for v in self.lanes.values()))
        await fan_out(missing, look_up, workers=workers, stop=self.stop,
                      taking=lambda: not self.stop.requested, grace_s=None)  # fmt: skip
        if found:
            self.ledger.record_device_ids(found)
            ids.update(found)
        readings: dict[tuple[str, str], Reading | None] = {}
        by_product: dict[str, list[Device]] = {}
        for device in devices:
            if device.imei in ids:
                by_product.setdefault(device.product, []).append(device)
        for product, known in sorted(by_product.items()):
            lane = self.lane_of(product)
            for start in range(0, len(known), MAX_IDS):
                chunk = known[start : start + MAX_IDS]
                if self.stop.requested:
                    return readings
                try:
                    points = await self._ask(lane, self._counted_points(lane, chunk, ids))
                except OneNetUnavailable as exc:
                    result.unreadable += len(chunk)
                    result.last_error = str(exc)
                    for device in chunk:
                        notes[device.imei] = f"its datapoints could not be read ({exc})"
                    continue
                for device in chunk:
                    point = points.get(ids[device.imei])
                    at = None if point is None or point.at is None else point.at.timestamp()
                    reading = None if point is None else Reading(point.value, at)
                    readings[device.imei, device.product] = reading
        return readings

    def _counted_id(self, lane: VerifyLane, imei: str) -> Callable[[], Awaitable[str]]:
        async def call() -> str:
            await lane.lane.pace.acquire()
            self.calls.getbyimei += 1
            return await device_id(lane.client, imei)

        return call

    def _counted_points(
        self, lane: VerifyLane, chunk: Sequence[Device], ids: dict[str, str]
    ) -> Callable[[], Awaitable[dict[str, Datapoint]]]:
        async def call() -> dict[str, Datapoint]:
            await lane.lane.pace.acquire()
            self.calls.datapoints += 1
            return await datapoints(lane.client, [ids[d.imei] for d in chunk], self.spec.datastream)

        return call

    async def _ask(self, lane: VerifyLane, call: Callable[[], Awaitable[T]]) -> T:
        policy = retry_query(
            lane.settings.retry, stop=self.stop, sleep=self.stop.sleeper(self.sleep)
        )
        return await policy(lambda: lane.lane.query(call))

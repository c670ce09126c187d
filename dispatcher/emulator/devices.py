"""The fleet behind the emulated API: devices that wake on their own schedule and take their
cached commands.

A device is an IMEI seen in a command. It wakes every ``wake_every_s`` seconds from its first
command's create time, after a seeded phase and up to ``wake_jitter`` of a period late; each wake
is an uplink of one kind (REGISTER 1, UPDATE 2, NOTIFY 4, the bits of ``trigger_msg``). At a wake,
its waiting commands (send_status 1) created by then, inside their window (valid <= wake < expired)
and triggered by that kind are sent (3), in the order they were created (OneNET does not document
the order in which one wake delivers several commands: this is one plausible order, so a write
created before an execute reaches the device first); what each does to the device's firmware and
what it answers is firmware.py's. ``answer_delay_s`` later the device answers: success (5,
SUCCESS, its result) or failed (6: an error device's error name, or METHOD_NOT_ALLOWED for an
Update with nothing to install; no result). A waiting command whose window has closed expires
(4). See docs/onenet-api.md, "Follow-up calls".

Nothing runs in the background: ``Devices.advance`` replays a device's wakes up to "now" when its
commands are asked about. Every random draw happens at a wake, in the order of the wakes, so a
seeded run repeats exactly however often it is looked at.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field, replace
from typing import Final

from dispatcher.emulator.firmware import NOT_ALLOWED, Firmware
from dispatcher.emulator.registry import DEFAULT_FIRMWARE
from dispatcher.emulator.state import (
    EXPIRED,
    FAILED,
    SENT,
    SUCCESS,
    WAITING,
    Delivery,
    Store,
)

__all__ = ["NOTIFY", "REGISTER", "UPDATE", "Devices", "Fleet"]

DEFAULT_TARGET: Final = "2.4.1"

REGISTER, UPDATE, NOTIFY = 1, 2, 4  # uplink kinds: the bits of trigger_msg
ALL_UPLINKS: Final = REGISTER | UPDATE | NOTIFY  # trigger_msg omitted: OneNET's default, 7
# confirm_status names an error device answers with (docs/onenet-api.md, codes 1, 3, 4, 5)
DEVICE_ERRORS: Final = ("METHOD_NOT_ALLOWED", "NOT_FOUND", "INTERNAL_SERVER_ERROR", "TIME_OUT")


@dataclass(frozen=True, slots=True)
class Fleet:
    """How the devices behind the API behave; ``wake_every_s`` None or 0: no devices, commands
    wait forever (send_status 1), as without a fleet."""

    wake_every_s: float | None = None  # the wake period of every device, in seconds
    wake_jitter: float = 0.1  # each wake is up to this share of a period late (uniform)
    never_wake: float = 0.0  # share of devices that never wake: their commands expire
    device_errors: float = 0.0  # share of devices that answer with an error (send_status 6)
    answer_delay_s: float = 0.2  # from sent (3) to the device's answer (5 or 6)
    # (kind, weight): mostly UPDATE, sometimes REGISTER, seldom NOTIFY
    uplinks: tuple[tuple[int, float], ...] = ((UPDATE, 0.8), (REGISTER, 0.15), (NOTIFY, 0.05))
    seed: int | None = None  # the same seed, commands and clock: the same deliveries
    firmware: str = DEFAULT_FIRMWARE  # the version (3/0/3) of a device the registry does not set
    firmware_target: str = DEFAULT_TARGET  # what an update whose URI names no version installs

    def __post_init__(self) -> None:
        every = self.wake_every_s
        if every is not None and not (math.isfinite(every) and every >= 0):
            raise ValueError("wake_every_s must be a finite number of seconds, 0 or more")
        for name in ("wake_jitter", "never_wake", "device_errors"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")
        if not (math.isfinite(self.answer_delay_s) and self.answer_delay_s >= 0):
            raise ValueError("answer_delay_s must be a finite number of seconds, 0 or more")
        kinds = {kind for kind, _ in self.uplinks}
        if not self.uplinks or not kinds <= {REGISTER, UPDATE, NOTIFY}:
            raise ValueError("uplinks must name kinds 1, 2 or 4")
        if min(weight for _, weight in self.uplinks) < 0 or not any(w for _, w in self.uplinks):
            raise ValueError("uplink weights must not be negative, and one must be positive")

    @property
    def on(self) -> bool:
        """Whether there are devices at all."""
        return bool(self.wake_every_s)


@dataclass(slots=True)
class _Device:
    """One device's schedule and what it is doing, between two looks."""

    rng: random.Random
    imei: str
    asleep: bool  # never wakes
    errors: bool  # answers every command with an error
    start: float  # first command's create time plus the phase: wake k is due at start + k*period
    wakes: int = 0
    next_wake: float = math.inf
    next_kind: int = UPDATE
    seen: int = 0  # how many of the imei's commands were taken in
    waiting: list[str] = field(default_factory=list)  # uuids that may still be sent
    answers: list[tuple[float, str, Delivery, int]] = field(default_factory=list)  # due, in order


class Devices:
    """The devices of one emulator, advanced lazily over its store."""

    def __init__(self, fleet: Fleet, firmware: Firmware) -> None:
        self.fleet = fleet
        self.firmware = firmware
        self._devices: dict[str, _Device] = {}
        self._kinds = [kind for kind, _ in fleet.uplinks]
        self._weights = [weight for _, weight in fleet.uplinks]

    def advance_all(self, store: Store, now: float) -> None:
        """Every device's wakes and answers up to ``now``."""
        for imei in list(store.by_imei):
            self.advance(store, imei, now)

    def advance(self, store: Store, imei: str, now: float) -> None:
        """The device's wakes, answers and expiries up to ``now`` (never backwards)."""
        uuids = store.by_imei.get(imei)
        if not uuids:
            return
        device = self._devices.get(imei)
        if device is None:
            device = self._devices[imei] = self._new(imei, store.commands[uuids[0]].created_at)
        if device.seen < len(uuids):
            device.waiting.extend(uuids[device.seen :])
            device.seen = len(uuids)
        while device.next_wake <= now:
            wake = device.next_wake
            self._answer(store, device, wake)
            self._deliver(store, device, wake)
            self._schedule(device)
        self._answer(store, device, now)
        self._expire(store, device, now)

    def wake_sleepers(self, now: float) -> int:
        """The devices that never woke start waking from ``now`` (back in coverage, a new
        battery), each on its own period; how many."""
        woken = 0
        for device in self._devices.values():
            if device.asleep:
                device.asleep, device.start, device.wakes = False, now, 0
                self._schedule(device)
                woken += 1
        return woken

    def _new(self, imei: str, first_created: float) -> _Device:
        fleet = self.fleet
        # a string seed is hashed with SHA-512: the same for every process (random.seed)
        rng = random.Random(f"{fleet.seed}:{imei}") if fleet.seed is not None else random.Random()
        asleep = rng.random() < fleet.never_wake
        errors = rng.random() < fleet.device_errors
        period = fleet.wake_every_s or math.inf
        device = _Device(rng, imei, asleep, errors, first_created + rng.uniform(0.0, period))
        if not asleep:
            self._schedule(device)
        return device

    def _schedule(self, device: _Device) -> None:
        """Draw the next wake: its time (late by up to the jitter) and its uplink kind."""
        period = self.fleet.wake_every_s or math.inf
        late = device.rng.uniform(0.0, self.fleet.wake_jitter * period)
        device.next_wake = device.start + device.wakes * period + late
        device.next_kind = device.rng.choices(self._kinds, self._weights)[0]
        device.wakes += 1

    def _deliver(self, store: Store, device: _Device, wake: float) -> None:
        """Send the waiting commands this wake's uplink triggers; queue the device's answers."""
        kind = device.next_kind
        due = wake + self.fleet.answer_delay_s
        self.firmware.woke(device.imei, wake)
        still: list[str] = []
        for uuid in device.waiting:
            cmd = store.commands[uuid]
            if cmd.send_status != WAITING:
                continue  # cancelled
            if cmd.expired_at <= wake:  # its window closed before this wake
                store.commands[uuid] = replace(cmd, send_status=EXPIRED)
                continue
            trigger = ALL_UPLINKS if cmd.trigger_msg is None else cmd.trigger_msg
            if cmd.created_at > wake or cmd.valid_at > wake or not trigger & kind:
                still.append(uuid)
                continue
            store.commands[uuid] = replace(cmd, send_status=SENT)
            store.deliveries[uuid] = sent = Delivery(send_time=wake)
            result = self.firmware.deliver(device.imei, cmd, wake, fails=device.errors)
            if result is None:
                name = device.rng.choice(DEVICE_ERRORS) if device.errors else NOT_ALLOWED
                answer = replace(sent, confirm_time=due, confirm_status=name)
                device.answers.append((due, uuid, answer, FAILED))
            else:
                answer = replace(sent, confirm_time=due, confirm_status="SUCCESS")
                answer = replace(answer, cmd_result=result)
                device.answers.append((due, uuid, answer, SUCCESS))
        device.waiting = still

    def _answer(self, store: Store, device: _Device, until: float) -> None:
        """Apply the device's answers due by ``until``."""
        answers = device.answers
        done = 0
        for due, uuid, delivery, status in answers:
            if due > until:
                break
            store.commands[uuid] = replace(store.commands[uuid], send_status=status)
            store.deliveries[uuid] = delivery
            done += 1
        del answers[:done]

    def _expire(self, store: Store, device: _Device, now: float) -> None:
        """Mark the waiting commands whose window has closed by ``now`` expired (4)."""
        still: list[str] = []
        for uuid in device.waiting:
            cmd = store.commands[uuid]
            if cmd.send_status != WAITING:
                continue
            if cmd.expired_at <= now:
                store.commands[uuid] = replace(cmd, send_status=EXPIRED)
            else:
                still.append(uuid)
        device.waiting = still

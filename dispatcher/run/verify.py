"""Judging a job's devices against its ``verify:``: the value each one reads, and where it stands
(on target, not yet, failed, never seen), from its commands as the ledger holds them.

A read's ``cmd_result`` (run/status.py reads it into the ledger) may be the value itself, a JSON
list of ``{"res_id", "val"}`` (a read of an instance or a whole object), or a JSON object;
``value_of`` takes the resource's value out of each. A device is **on target** when its value is
a good one, **failed** when a step of it was rejected, failed, expired or skipped, or its delivery
failed, expired or was cancelled, **not yet** when it reads another value, **never seen** when it
reads none. A device not yet or never seen is *final* once its deadline has passed: ``timeout``
after its last step was accepted, or (no timeout) the end of its read's window (with source
datapoints, of its last step's); with source command also once none of its reads is open and none
of its steps is left to send (nothing could change its value).

Pure: the rounds that read the values are verify_rounds.py's.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

import orjson

from dispatcher.job.verifyspec import VerifySource, VerifySpec, covers
from dispatcher.ledger.records import DeliveryState, Row, Status
from dispatcher.ledger.verify import VerifyResult, VerifyState
from dispatcher.model.command import Op
from dispatcher.onenet.datapoints import value_text
from dispatcher.run.status import window_end
from dispatcher.times import parse_onenet

__all__ = ["Device", "Reading", "devices_of", "judge", "reads_it", "value_of"]

_FAILED: Final = {
    Status.REJECTED: "was rejected",
    Status.FAILED: "could not be sent",
    Status.EXPIRED: "expired before it was sent",
    Status.SKIPPED: "was skipped",
}
_UNDELIVERED: Final = {
    DeliveryState.FAILED: "delivery failed",
    DeliveryState.EXPIRED: "delivery expired",
    DeliveryState.CANCELLED: "was cancelled",
}


@dataclass(frozen=True, slots=True)
class Reading:
    """A value a device reads, and when it was read (unix seconds; None: not said)."""

    value: str
    at: float | None


@dataclass(slots=True)
class Device:
    """One device of the job (an IMEI in a product) and its commands, in job order."""

    imei: str
    product: str
    rows: list[Row] = field(default_factory=list)


def devices_of(rows: Iterable[Row]) -> list[Device]:
    """The job's devices, each with its rows, in the order each first comes."""
    found: dict[tuple[str, str], Device] = {}
    for row in rows:
        c = row.command
        device = found.get((c.imei, c.product))
        if device is None:
            device = found[c.imei, c.product] = Device(c.imei, c.product)
        device.rows.append(row)
    return list(found.values())


def reads_it(spec: VerifySpec, row: Row) -> bool:
    """Whether ``row`` is a read that brings back the spec's resource."""
    c = row.command
    return c.op is Op.READ and covers(spec, c.obj_id, c.obj_inst_id, c.res_id)


def value_of(cmd_result: str, spec: VerifySpec, *, exact: bool) -> str | None:
    """The resource's value in a read's ``cmd_result``; None when it holds none. A plain value
    (not a list or an object) is taken only from a read of the resource itself (``exact``)."""
    text = cmd_result.strip()
    try:
        doc = orjson.loads(text)
    except orjson.JSONDecodeError:
        return text if exact and text else None
    if isinstance(doc, (list, dict)):
        return _in(doc, spec)
    return value_text(doc) if exact else None


def _in(doc: object, spec: VerifySpec) -> str | None:
    """The resource's value in a JSON answer: a list of items, an item, or a mapping by id."""
    if isinstance(doc, list):
        for item in doc:
            found = _in(item, spec)
            if found is not None:
                return found
        return None
    if not isinstance(doc, dict):
        return None
    if "res_id" in doc or "id" in doc:
        res = doc.get("res_id", doc.get("id"))
        inst = doc.get("obj_inst_id", doc.get("inst_id", spec.obj_inst_id))
        if str(res) == str(spec.res_id) and str(inst) == str(spec.obj_inst_id):
            return value_text(doc.get("val", doc.get("value")))
        return None
    for key in ("data", "items", "res", "resources"):
        if isinstance(doc.get(key), (list, dict)):
            return _in(doc[key], spec)
    if str(spec.res_id) in doc:
        return value_text(doc[str(spec.res_id)])
    if "val" in doc or "value" in doc:
        return value_text(doc.get("val", doc.get("value")))
    return None


def command_reading(device: Device, spec: VerifySpec) -> Reading | None:
    """The latest value a delivered read of the device brought back (by when it answered)."""
    best: tuple[str, int, Reading] | None = None
    for row in device.rows:
        if row.cmd_result is None or row.send_status != 5 or not reads_it(spec, row):
            continue
        exact = row.command.res_id is not None and row.command.obj_inst_id is not None
        value = value_of(row.cmd_result, spec, exact=exact)
        if value is None:
            continue
        at = _unix(row.confirm_time) or row.status_checked_at
        order = (row.confirm_time or "", row.seq)
        if best is None or order > best[:2]:
            best = (*order, Reading(value, at))
    return None if best is None else best[2]


def judge(
    device: Device, spec: VerifySpec, reading: Reading | None, now: float, note: str = ""
) -> tuple[VerifyResult, bool]:
    """The device's verdict, from ``reading`` (None: nothing read), and whether it is final
    (on target, failed, or past its deadline at ``now``, OneNET's clock); ``note`` says why
    nothing was read when it is known (a device the platform does not know, say)."""
    value = None if reading is None else reading.value
    at = None if reading is None else reading.at

    def result(state: VerifyState, reason: str) -> VerifyResult:
        return VerifyResult(device.imei, device.product, state, value, at, spec.source, reason)

    if value is not None and spec.matches(value):
        return result(VerifyState.ON_TARGET, ""), True
    failure = _failure(device.rows)
    if failure is not None:
        return result(VerifyState.FAILED, failure), True
    open_read = any(reads_it(spec, r) and r.delivery in _OPEN for r in device.rows)
    unsent = next((r for r in device.rows if r.status in _UNSENT and r.retired is None), None)
    over = now >= _deadline(device, spec)
    # From its reads alone, a device's value cannot change once none is open and no step is
    # left to send; a datapoint can, whenever the device reports.
    settled = spec.source is VerifySource.COMMAND and not open_read and unsent is None
    final = over or settled
    late = " (its time to verify is over)" if over else ""
    if value is not None:
        return result(VerifyState.NOT_YET, f"reads {value!r}, expected {_good(spec)}{late}"), final
    why = note or (
        "its read is not delivered yet"
        if open_read
        else f"{_step(unsent)} is not sent yet"
        if unsent is not None
        else "no read of it was delivered"
        if spec.source is VerifySource.COMMAND
        else f"no datapoint {spec.datastream}"
    )
    return result(VerifyState.NEVER_SEEN, why + late), final


_OPEN: Final = frozenset({DeliveryState.UNREAD, DeliveryState.WAITING, DeliveryState.SENT})
_UNSENT: Final = frozenset({Status.PENDING, Status.IN_FLIGHT, Status.IN_DOUBT})


def _step(row: Row) -> str:
    return f"step {row.command.step}" if row.command.step else "its command"


def _good(spec: VerifySpec) -> str:
    if len(spec.expect) == 1:
        return repr(spec.expect[0])
    return "one of " + ", ".join(repr(v) for v in spec.expect)


def _failure(rows: list[Row]) -> str | None:
    """Why the device failed: its first step that did not get through, or None."""
    for row in rows:
        if row.retired is not None:
            continue
        what = _FAILED.get(row.status)
        delivery = row.delivery
        if what is None and delivery is not None:
            what = _UNDELIVERED.get(delivery)
        if what is not None:
            if row.status is Status.SKIPPED and row.error.startswith("held back"):
                return f"{_step(row)} ({row.command.op.value}) was {row.error}"
            detail = f": {row.error}" if row.error and row.status is not Status.ACCEPTED else ""
            handed = f"; handed to {row.retried_in} (verify its ledger)" if row.retried_in else ""
            return f"{_step(row)} ({row.command.op.value}) {what}{detail}{handed}"
    return None


def _deadline(device: Device, spec: VerifySpec) -> float:
    """When a device not on target stops being waited for (unix seconds, OneNET's clock)."""
    accepted = [r for r in device.rows if r.status is Status.ACCEPTED and r.retired is None]
    if spec.timeout_s is not None:
        times = [r.last_server_at or r.last_attempt_at for r in accepted]
        known = [t for t in times if t is not None]
        return max(known) + spec.timeout_s if known else -math.inf
    windows = [r for r in accepted if reads_it(spec, r)] or accepted
    if spec.source is VerifySource.DATAPOINTS:
        windows = accepted
    return max((window_end(r.sent_expired_time) for r in windows), default=-math.inf)


def _unix(text: str | None) -> float | None:
    if text is None:
        return None
    with contextlib.suppress(ValueError):
        return parse_onenet(text).timestamp()
    return None

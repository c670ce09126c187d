"""Ledgers as real jobs leave them, for the HTML report's tests and its screenshots: a plain
job, a job of steps (a firmware update, four commands per device) and a job of two products.

Outcomes are spread over the fleet by a device's number, so the figures are known: see each
builder's docstring. Delivery states were read by ``dispatcher status`` three hours before
:data:`NOW`, the moment the reports are made.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime

from dispatcher.ledger.sqlite import Ledger
from dispatcher.ledger.store import Delivery, JobRecord, Result, Status
from dispatcher.model.command import Command, command_key
from dispatcher.times import BEIJING, parse_onenet
from tests.support.ledger import make_command, write_outcomes

__all__ = ["NOW", "READ_AT", "STEPS", "T0", "plain_job", "steps_job", "two_products_job"]

T0 = parse_onenet("2026-12-06 09:00:00").timestamp()  # the first send (UTC+8)
NOW = parse_onenet("2026-12-06 17:03:00").timestamp()  # when the report is made
READ_AT = parse_onenet("2026-12-06 14:03:00").timestamp()  # dispatcher status, 3 h before
STEPS = (  # res_id and args of the firmware update's steps (object 5)
    (1, "coap://fw.example.com:5683/nb/2.4.1.bin"),
    (2, "update"),
    (5, "read result"),
    (3, "read version"),
)


def _confirm(i: int) -> str:
    """A delivery's confirm_time as OneNET writes it, spread over the hours after the sends."""
    at = T0 + 600 + (i * 97) % (6 * 3600)
    return datetime.fromtimestamp(at, BEIJING).strftime("%Y-%m-%d %H:%M:%S")


def _delivered(key: str, i: int) -> Delivery:
    return Delivery(key, 5, "SUCCESS", None, _confirm(i), "OK", READ_AT)


def _record(ledger: Ledger, name: str, path: str, total: int) -> None:
    ledger.set_job(JobRecord(path, name, "ab", total))
    run = ledger.start_run(path, {})
    ledger.finish_run(run, {}, None)


def _accept(c: Command, i: int) -> Result:
    return Result(c.key, Status.ACCEPTED, 0, "succ", f"u-{c.key[:12]}", 1, T0 + i * 0.05, 40.0)


def _refuse(c: Command, i: int, errno: int, text: str) -> Result:
    return Result(c.key, Status.REJECTED, errno, text, None, 1, T0 + i * 0.05, 35.0)


def plain_job(
    ledger: Ledger, devices: int = 3000, foreign: Sequence[int] = (1199, 1899, 2599)
) -> None:
    """One command per device (jobs/example-fleet.csv, row i + 2): the ``foreign`` devices are
    refused errno 1 (not in the product), every 100th device errno 5006; of the accepted ones,
    every 25th waits, every 40th expired, every 60th failed on the device (TIME_OUT), the rest
    delivered."""
    cmds = [
        make_command(i, args="reboot", source="jobs/example-fleet.csv", line=i + 2)
        for i in range(devices)
    ]
    ledger.register(cmds)
    results, deliveries = [], []
    for i, c in enumerate(cmds):
        if i in foreign:
            results.append(_refuse(c, i, 1, "auth failed"))
        elif i % 100 == 99:
            results.append(_refuse(c, i, 5006, "system logic limit"))
        else:
            results.append(_accept(c, i))
            if i % 25 == 3:
                deliveries.append(Delivery(c.key, 1, None, None, None, None, READ_AT))
            elif i % 40 == 7:
                deliveries.append(Delivery(c.key, 4, None, None, None, None, READ_AT))
            elif i % 60 == 11:
                deliveries.append(Delivery(c.key, 6, "TIME_OUT", None, None, None, READ_AT))
            else:
                deliveries.append(_delivered(c.key, i))
    write_outcomes(ledger, results)
    ledger.record_delivery(deliveries)
    _record(ledger, "example", "/srv/dispatcher/jobs/example.yaml", devices)


def _steps_of(i: int) -> list[Command]:
    base = make_command(i, source="jobs/firmware-update.yaml", line=31, obj_id=5)
    made: list[Command] = []
    for step, (res_id, args) in enumerate(STEPS, 1):
        key = command_key(base.imei, 5, 0, res_id, args, step=step)
        after = made[-1].key if made else ""
        made.append(
            dataclasses.replace(base, res_id=res_id, args=args, step=step, key=key, after=after)
        )
    return made


def steps_job(ledger: Ledger, devices: int = 200) -> None:
    """Four steps per device (a firmware update): every 10th device's step 2 expired (steps 3
    and 4 held back), every 20th (of the rest) waits on step 2 (3 and 4 not sent yet), every
    25th's step 1 failed on the device (the rest held back), devices 7 and 8 are refused errno 1
    at step 1; the rest ran every step."""
    per_device = [_steps_of(i) for i in range(devices)]
    ledger.register([c for cmds in per_device for c in cmds])
    results, deliveries, held = [], [], []
    for i, cmds in enumerate(per_device):
        if i in (7, 8):
            results.append(_refuse(cmds[0], i, 1, "auth failed"))
            held += [
                (c, "held back: step 1 (execute 5/0/1) is rejected, not accepted") for c in cmds[1:]
            ]
        elif i % 25 == 24:
            results.append(_accept(cmds[0], i))
            deliveries.append(
                Delivery(cmds[0].key, 6, "NOT_FOUND", None, _confirm(i), "download failed", READ_AT)
            )
            held += [
                (c, "held back: step 1 (execute 5/0/1) failed on the device, not delivered")
                for c in cmds[1:]
            ]
        elif i % 10 == 3:
            results += [_accept(cmds[0], i), _accept(cmds[1], i)]
            deliveries += [
                _delivered(cmds[0].key, i),
                Delivery(cmds[1].key, 4, None, None, None, None, READ_AT),
            ]
            held += [
                (
                    c,
                    "held back: step 2 (execute 5/0/2) expired at 2026-12-06 13:00:00 (UTC+8),"
                    " not delivered",
                )
                for c in cmds[2:]
            ]
        elif i % 20 == 5:
            results += [_accept(cmds[0], i), _accept(cmds[1], i)]
            deliveries += [
                _delivered(cmds[0].key, i),
                Delivery(cmds[1].key, 1, None, None, None, None, READ_AT),
            ]
        else:
            results += [_accept(c, i) for c in cmds]
            deliveries += [_delivered(c.key, i) for c in cmds]
    write_outcomes(ledger, results)
    ledger.record_delivery(deliveries)
    for why in sorted({why for _, why in held}):
        ledger.skip([c.key for c, w in held if w == why], why)
    _record(
        ledger,
        "meter-firmware-2.4.1-lwm2m",
        "/srv/dispatcher/jobs/firmware-update.yaml",
        devices * len(STEPS),
    )


def two_products_job(ledger: Ledger, devices: int = 120) -> None:
    """One command per device, the even devices in product ``meters-north``, the odd ones in
    ``水表-南区`` (its key is wrong: every command refused errno 1); in the north, devices 10 and
    20 are refused errno 1 (not in the product), every 8th waits, the rest delivered."""
    cmds = []
    for i in range(devices):
        product = "meters-north" if i % 2 == 0 else "水表-南区"
        source = "jobs/two-products.yaml"
        cmds.append(make_command(i, args="reboot", product=product, source=source, line=20 + i))
    ledger.register(cmds)
    results, deliveries = [], []
    for i, c in enumerate(cmds):
        if c.product != "meters-north" or i in (10, 20):
            results.append(_refuse(c, i, 1, "auth failed"))
        else:
            results.append(_accept(c, i))
            if i % 8 == 2:
                deliveries.append(Delivery(c.key, 1, None, None, None, None, READ_AT))
            else:
                deliveries.append(_delivered(c.key, i))
    write_outcomes(ledger, results)
    ledger.record_delivery(deliveries)
    _record(ledger, "meters-reboot", "/srv/dispatcher/jobs/two-products.yaml", devices)

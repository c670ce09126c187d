"""A ledger that holds something of everything, written through the LedgerStore API as runs and
follow-ups write it (for the copy tests): every status, retired rows of both kinds, a hand-over,
runs with unicode JSON, a canary verdict, a frozen list, verify results and device ids,
delivery records and cancels, and times whose floats do not print short; and every read a
LedgerStore answers, to compare two ledgers by."""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

from dispatcher.ledger.identity import JobRecord
from dispatcher.ledger.store import Delivery, InFlight, LedgerStore, Result, Status
from dispatcher.ledger.targets import FrozenTarget
from dispatcher.ledger.verify import VerifyResult, VerifyState
from dispatcher.model.command import Command, Op
from tests.support.ledger import make_command

__all__ = ["JOB", "Clock", "commands", "fill", "reads"]

JOB = JobRecord("/srv/jobs/fleet.yaml", "固件 fleet ✓", "ab" * 32, 9)


class Clock:
    """Times a run would write: each call a little later, floats that do not print short."""

    def __init__(self) -> None:
        self._n = itertools.count()

    def __call__(self) -> float:
        return 1_700_000_000.1 + next(self._n) * (0.1 + 0.2)


def commands() -> list[Command]:
    """The job's nine commands: two products, a read, a step after another."""
    cmds = [make_command(n, product="meters" if n % 2 else "") for n in range(1, 8)]
    cmds.append(make_command(8, op=Op.READ, args=None, res_id=None, obj_id=3, obj_inst_id=0))
    step_two = make_command(9, imei=cmds[0].imei, step=2, after=cmds[0].key)
    return [*cmds, step_two]


def fill(store: LedgerStore) -> list[Command]:
    """Write the rich ledger into ``store`` (empty); the job's commands as they stand now."""
    cmds = commands()
    k = [c.key for c in cmds]
    store.set_job(JOB)
    run = store.start_run("jobs/fleet.yaml", {"rate": 0.1 + 0.2, "note": "升级 ✓", "n": [1, 2.5]})
    store.register(cmds)
    store.write_batch(
        [
            InFlight(key, 1_700_000_001.1 + i / 3, None, "2030-01-01T00:00:00", run, 1e-7 + i)
            for i, key in enumerate(k[:6])
        ],
        [
            Result(k[0], Status.ACCEPTED, 0, "succ", "uuid-0", 1, 1_700_000_002.7, 41.3),
            Result(k[1], Status.ACCEPTED, 0, "succ", "uuid-1", 2, 1_700_000_002.9, 0.1 + 0.2),
            Result(k[2], Status.REJECTED, 2, "设备不在线 (offline)", None, 1, 1_700_000_003.3, 7.0),
            Result(k[3], Status.FAILED, None, "HTTP 503", None, 3, 1_700_000_004.1, None),
            Result(k[4], Status.IN_DOUBT, None, "answer lost", None, 1, 1_700_000_004.2, None),
        ],
    )  # fmt: skip  -- k[5] stays in flight, k[6..] pending
    store.hand_over([k[3]], "jobs/fleet.retry.csv")
    store.skip([k[7]], "a rollout rule: 40% failed")
    verdict = store.pass_canary("meters", [k[1]], [cmds[1], cmds[6]])
    assert verdict == 1
    store.record_delivery(
        [Delivery(k[0], 3, None, "2024-05-01 10:00:00", None, None, 1_700_000_010.01),
         Delivery(k[1], 4, "ok", "2024-05-01 10:00:01", "2024-05-01 10:00:09", "结果", 1.5)]
    )  # fmt: skip
    store.record_cancel([(k[0], "errno 10412: already sent", 3)])
    store.finish_run(run, {"accepted": 2, "说明": "partial", "rate": 1 / 3}, "ctrl-c")
    store.start_run("jobs/fleet.yaml", {"resumed": True})  # never finished (killed)
    # The job edited: one command removed, one given another retry (its old version retired).
    edited = dataclasses.replace(cmds[2], retry=7)
    now = [c for c in cmds if c.key != k[5]]
    now[now.index(cmds[2])] = edited
    diff = store.compare(now, apply=True)
    assert (diff.changed, diff.removed) == (1, 1)
    store.freeze_targets([FrozenTarget(c.imei, f"dev-{i}") for i, c in enumerate(cmds[:5])])
    store.freeze_targets([FrozenTarget(cmds[8].imei, "never"), FrozenTarget("869999", "")])
    store.record_verify(
        [VerifyResult(cmds[0].imei, "", VerifyState.ON_TARGET, "v2.1", 1_700_000_100.3, "command"),
         VerifyResult(cmds[1].imei, "meters", VerifyState.NOT_YET, None, None, "datapoints",
                      "reads 1.0 ✗")]
    )  # fmt: skip
    store.record_device_ids({cmds[0].imei: "1234567", cmds[1].imei: "meter-名"})
    return now


def reads(store: LedgerStore) -> dict[str, Any]:
    """Every read a LedgerStore answers, by name."""
    keys = [row.key for row in store.rows()]
    imeis = sorted({row.command.imei for row in store.rows()})
    return {
        "rows": list(store.rows()),
        "retired_rows": list(store.rows(retired=True)),
        "failed_rows": list(store.rows([Status.FAILED, Status.RETRIED])),
        "rows_of": store.rows_of(keys[::-1]),
        "counts": store.counts(),
        "stats": store.stats(),
        "runs": store.runs(),
        "job": store.job(),
        "recorded_job_paths": store.recorded_job_paths(),
        "frozen_targets": store.frozen_targets(),
        "verify_results": store.verify_results(),
        "device_ids": store.device_ids(),
        "delivery_breakdown": store.delivery_breakdown(),
        "retired_counts": store.retired_counts(),
        "product_counts": store.product_counts(),
        "errno_groups": store.errno_groups(),
        "latencies_at": store.latencies_at([1, 2]),
        "handed_over": store.handed_over(),
        "retry_jobs": store.retry_jobs(),
        "total": store.total(),
        "rows_to_check": list(store.rows_to_check()),
        "count_to_check": store.count_to_check(),
        "products_to_check": store.products_to_check(),
        "covered": [store.canary_covered_before(p) for p in ("meters", None, "")],
        "uncovered": store.uncovered(keys),
        "uuids": [store.known_uuids(imei) for imei in imeis],
    }

"""Ledger test helpers: a command to register, and outcomes written as a run writes them (each
answered command marked in flight first)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from dispatcher.job.command import Command, command_key
from dispatcher.ledger.lifecycle import event_of, sources
from dispatcher.ledger.store import InFlight, LedgerStore, Result, Status
from dispatcher.times import parse_timespec

__all__ = ["make_command", "write_outcomes"]


def make_command(n: int, **fields: object) -> Command:
    """Command ``n`` of a fleet (its own imei and args), keyed as the job reader keys it;
    ``fields`` override any value (a given ``key`` is kept as given)."""
    values: dict[str, object] = {
        "imei": f"86{n:013d}",
        "obj_id": 3200,
        "obj_inst_id": 0,
        "res_id": 5750,
        "expired_time": parse_timespec("+6h"),
        "args": f"reboot {n}",
        "source": "jobs/fleet.yaml",
        "line": 10 + n,
    }
    values.update(fields)
    cmd = Command(**values)  # type: ignore[arg-type]
    if "key" in fields:
        return cmd
    key = command_key(cmd.imei, cmd.obj_id, cmd.obj_inst_id, cmd.res_id, cmd.args)
    return dataclasses.replace(cmd, key=key)


def write_outcomes(
    ledger: LedgerStore,
    results: Sequence[Result],
    *,
    run_id: int = 1,
    expires: str = "2030-01-03T00:00:00",
) -> None:
    """``results`` written as answers to requests sent: the ones only a request can have (an
    answer, a lost one) are marked in flight first (unless they are), at their own time, in the
    same transaction."""
    flying = {row.key for row in ledger.rows_of([r.key for r in results])
              if row.status is Status.IN_FLIGHT}  # fmt: skip
    marks = [
        InFlight(r.key, r.at, None, expires, run_id)
        for r in results
        if r.key not in flying
        and Status.IN_FLIGHT in sources(r.event or event_of(r.status))
        and Status.PENDING not in sources(r.event or event_of(r.status))
    ]
    ledger.write_batch(marks, results)

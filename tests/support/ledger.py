"""Ledger test helpers: a command to register, outcomes written as a run writes them (each
answered command marked in flight first), a ledger of the first schema, and rows read back."""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Sequence
from pathlib import Path

from dispatcher.ledger import schema as ledger_file
from dispatcher.ledger.address import LedgerAddress
from dispatcher.ledger.lifecycle import event_of, sources
from dispatcher.ledger.opening import open_ledger
from dispatcher.ledger.sqlite import Ledger
from dispatcher.ledger.store import InFlight, LedgerStore, Result, Row, Status
from dispatcher.model.command import Command, args_text, command_key
from dispatcher.times import parse_timespec

__all__ = [
    "accept",
    "find_row",
    "ledger_rows",
    "make_command",
    "mark",
    "schema_1_ledger",
    "write_outcomes",
]


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
    key = command_key(cmd.imei, cmd.obj_id, cmd.obj_inst_id, cmd.res_id, args_text(cmd))
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


def accept(key: str, uuid: str = "u-1", *, at: float = 2000.0) -> Result:
    """An accepted answer to ``key``'s request."""
    return Result(key, Status.ACCEPTED, 0, "succ", uuid, 1, at, 42.5)


def mark(key: str, at: float = 1000.0, run_id: int = 1) -> InFlight:
    """``key`` marked in flight, as before its request leaves."""
    return InFlight(key, at, "2024-05-01T10:00:00", "2024-05-01T16:00:00", run_id)


def find_row(ledger: Ledger, key: str) -> Row | None:
    """The ledger's row of ``key`` (retired ones included), or None."""
    return next((row for row in ledger.rows() if row.key == key), None)


def schema_1_ledger(path: Path) -> None:
    """A ledger as the first dispatcher wrote it: the step-1 statements, one command, one run."""
    raw = sqlite3.connect(path)
    for statement in ledger_file.MIGRATIONS[0]:
        raw.execute(statement)
    raw.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    raw.execute(
        "INSERT INTO commands (key, imei, obj_id, obj_inst_id, res_id, args, expired_time, retry,"
        " timeout, trigger_msg, source, line, status, uuid, attempts)"
        " VALUES ('k1', '860000000000001', 3200, 0, 5750, 'go', '+6h', 3, 25, 7, 'a.yaml', 3,"
        " 'accepted', 'u-old', 1)"
    )
    raw.execute(
        "INSERT INTO runs (job_path, started_at, settings) VALUES ('jobs/a.yaml', 1.0, '{}')"
    )
    raw.commit()
    raw.close()


def ledger_rows(ledger_path: LedgerAddress) -> list[Row]:
    """Every row of a ledger (a file, or a job of a PostgreSQL ledger), read without taking its
    lock."""
    with open_ledger(ledger_path, read_only=True) as ledger:
        return list(ledger.rows())

"""In-doubt rows and OneNET's history for the reconciliation tests: a row of the ledger as a
run leaves it in doubt, the history items that match it, a scripted OneNET listing them, and
``settle`` (reconcile() over that OneNET's client)."""

from __future__ import annotations

from dataclasses import fields, replace
from datetime import datetime
from typing import Any

from dispatcher.ledger.store import Row, Status
from dispatcher.model import Command, Op
from dispatcher.run.pacing import Pace
from dispatcher.run.reconcile import ReconcileReport, reconcile
from dispatcher.run.state import Stop
from dispatcher.times import BEIJING, parse_onenet, parse_timespec
from tests.support.scripted import ScriptedOneNet, Stored

IMEI = "861234567890123"
OTHER = "869876543210987"
FIRST_ATTEMPT = datetime(2024, 5, 1, 12, 0, 0, tzinfo=BEIJING).timestamp()
VALID = "2024-05-01T12:30:00"
EXPIRED = "2024-05-03T12:00:00"

ROW_DEFAULTS: dict[str, object] = {
    "imei": IMEI,
    "obj_id": 3203,
    "obj_inst_id": 0,
    "res_id": 5750,
    "args": "fw=2.4.1",
    "valid_time": "+30m",
    "expired_time": "+2d",
    "retry": 3,
    "timeout": 25,
    "trigger_msg": 3,
    "source": "fleet.yaml",
    "status": Status.IN_DOUBT,
    "error": "answer lost",
    "attempts": 1,
    "first_attempt_at": FIRST_ATTEMPT,
    "last_attempt_at": FIRST_ATTEMPT,
    "sent_valid_time": VALID,
    "sent_expired_time": EXPIRED,
    "reconciled": False,
    "op": Op.EXECUTE,
    "step": 0,
}


def make_row(seq: int = 1, **changes: object) -> Row:
    """An in-doubt row; ``changes`` name fields of the row or of its command; the row's fields
    not given here (or added to Row later) are None."""
    names = {f.name for f in fields(Row)} - {"command"}
    command_names = {f.name for f in fields(Command)}
    unknown = set(changes) - names - command_names
    assert not unknown, f"neither Row nor Command has a field {unknown}"
    values = {"seq": seq, "key": f"key-{seq}", "line": seq, **ROW_DEFAULTS, **changes}
    given = {name: values[name] for name in command_names if name in values}
    for name in ("valid_time", "expired_time"):
        if isinstance(given.get(name), str):
            given[name] = parse_timespec(given[name])  # type: ignore[arg-type]
    command = Command(**given)  # type: ignore[arg-type]
    return Row(command=command, **{name: values.get(name) for name in names})  # type: ignore[arg-type]


def item(uuid: str, **changes: object) -> Stored:
    """A command in OneNET's history that matches make_row(), with the args its detail shows."""
    found = Stored(
        uuid,
        IMEI,
        create_time=datetime.fromtimestamp(FIRST_ATTEMPT + 1, BEIJING),
        valid_time=parse_onenet(VALID),
        expired_time=parse_onenet(EXPIRED),
        args="fw=2.4.1",
        send_status=1,
        trigger_msg=3,
    )
    return replace(found, **changes)  # type: ignore[arg-type]


def history_of(items: dict[str, list[Stored]] | None = None, **options: Any) -> ScriptedOneNet:
    """A OneNET whose history lists ``items`` (device -> its commands, in that order), filtered
    by start (unless ``ignores_start``); ``options`` as ScriptedOneNet's (``down``, ...)."""
    onenet = ScriptedOneNet(**options)
    for listed in (items or {}).values():
        onenet.add(*listed)
    return onenet


async def settle(
    rows: list[Row],
    history: ScriptedOneNet,
    known: dict[str, set[str]] | None = None,
    lookback_s: float = 300.0,
    *,
    pace: Pace | None = None,
    clock_offset_s: float = 0.0,
    stop: Stop | None = None,
    concurrency: int = 8,
) -> ReconcileReport:
    """reconcile() of ``rows`` against ``history``'s client; ``known``: the uuids the ledger
    holds per device."""

    async def known_uuids(imei: str) -> set[str]:
        return set((known or {}).get(imei, set()))

    return await reconcile(
        rows,
        history.client,
        known_uuids=known_uuids,
        lookback_s=lookback_s,
        pace=pace or Pace(None),
        concurrency=concurrency,
        clock_offset_s=clock_offset_s,
        stop=stop,
    )


def found_uuids(report: ReconcileReport) -> dict[str, str]:
    """The uuid found for each row, by key."""
    return {row.key: uuid for row, uuid in report.found}


def ambiguous_keys(report: ReconcileReport) -> set[str]:
    """The keys of the rows left in doubt as ambiguous."""
    return {row.key for row, _ in report.ambiguous}

"""A command's row in the SQLite ledger, column by column: what a new command fills, what a
read gives back, and the Row each becomes. The one place a row is converted, always by name,
and the one place a command is converted to columns and back: a write's typed values are kept as
their body in the ``args`` column, its times as written (TimeSpec.text), each parsed once per
distinct text.
"""

from __future__ import annotations

import dataclasses
import functools
import operator
from typing import Any, Final, NamedTuple

from dispatcher.errors import LedgerError
from dispatcher.ledger.records import Retired, Row, Status
from dispatcher.model.command import Command, Op, args_text
from dispatcher.model.writes import write_values
from dispatcher.times import TimeSpec, parse_timespec

__all__ = [
    "INSERT_COLUMNS",
    "INSERT_COMMAND",
    "NO_ID",
    "ROW_COLUMNS",
    "SELECT_ROWS",
    "CommandColumns",
    "command_of",
    "insert_params",
    "new_row",
    "row_of",
]

NO_ID: Final = -1  # obj_inst_id or res_id a read leaves out (the columns are NOT NULL)


class CommandColumns(NamedTuple):
    """The columns of a row that hold its command (what a new command fills), by name."""

    key: str
    imei: str
    obj_id: int
    obj_inst_id: int  # NO_ID: none
    res_id: int  # NO_ID: none
    args: str | None  # an execute's args; a write's body (its values, as JSON)
    valid_time: str | None  # TimeSpec.text
    expired_time: str
    retry: int
    timeout: int
    trigger_msg: int
    source: str
    line: int
    op: str
    mode: int | None
    step: int
    after_key: str | None
    product: str | None


# The columns of a ledger row, as SELECT_ROWS reads them.
ROW_COLUMNS: Final = (
    "seq", "key", "imei", "obj_id", "obj_inst_id", "res_id", "args", "valid_time", "expired_time",
    "retry", "timeout", "trigger_msg", "source", "line", "status", "errno", "error", "uuid",
    "attempts", "first_attempt_at", "last_attempt_at", "latency_ms", "sent_valid_time",
    "sent_expired_time", "reconciled", "first_server_at", "last_server_at", "retired",
    "send_status", "confirm_status", "send_time", "confirm_time", "cmd_result", "status_checked_at",
    "cancelled_at", "cancel_error", "retried_in", "op", "mode", "step", "after_key", "product",
)  # fmt: skip
SELECT_ROWS: Final = f"SELECT {', '.join(ROW_COLUMNS)} FROM commands"
# The columns a new command fills (insert_params gives them, in this order); the rest keep
# their defaults until events write them.
INSERT_COLUMNS: Final = CommandColumns._fields
INSERT_COMMAND: Final = (
    f"INSERT INTO commands ({', '.join(INSERT_COLUMNS)})"
    f" VALUES ({', '.join('?' * len(INSERT_COLUMNS))}) ON CONFLICT(key) DO NOTHING"
)
# A Row's fields after its place and its command: each the column of its name.
_STATE: Final = tuple(f.name for f in dataclasses.fields(Row))[3:]
_at = ROW_COLUMNS.index
_state_of = operator.itemgetter(*map(_at, _STATE))
_command_of = operator.itemgetter(*map(_at, INSERT_COLUMNS))
_SEQ, _KEY = _at("seq"), _at("key")
_STATUS_AT, _RECONCILED_AT, _RETIRED_AT = map(_STATE.index, ("status", "reconciled", "retired"))

_STATUS: Final = {s.value: s for s in Status}
_RETIRED: Final = {r.value: r for r in Retired}
_OP: Final = {o.value: o for o in Op}
_CACHE = 4096  # distinct times kept


def insert_params(c: Command) -> tuple[object, ...]:
    """The parameters of :data:`INSERT_COMMAND` for one command (in CommandColumns' order)."""
    if not c.key:
        raise ValueError(f"{c.where}: command has no ledger key")
    valid = None if c.valid_time is None else c.valid_time.text
    inst = NO_ID if c.obj_inst_id is None else c.obj_inst_id
    res = NO_ID if c.res_id is None else c.res_id
    return (c.key, c.imei, c.obj_id, inst, res, args_text(c), valid, c.expired_time.text, c.retry,
            c.timeout, c.trigger_msg, c.source, c.line, str(c.op), c.mode, c.step,
            c.after or None, c.product or None)  # fmt: skip


def new_row(seq: int, c: Command) -> Row:
    """The row a newly registered command is (pending, nothing sent), as SQLite would hold it
    (for a ledger that keeps rows itself: memory.py)."""
    command = command_of(CommandColumns._make(insert_params(c)))
    return Row(seq=seq, key=c.key, command=command, status=Status.PENDING, errno=None, error="",
               uuid=None, attempts=0, first_attempt_at=None, last_attempt_at=None,
               latency_ms=None, sent_valid_time=None, sent_expired_time=None,
               reconciled=False)  # fmt: skip


def row_of(t: tuple[Any, ...]) -> Row:
    """A Row from the columns of :data:`SELECT_ROWS`, each field from the column of its name."""
    state = list(_state_of(t))
    state[_STATUS_AT] = _STATUS[state[_STATUS_AT]]
    state[_RECONCILED_AT] = bool(state[_RECONCILED_AT])
    retired = state[_RETIRED_AT]
    state[_RETIRED_AT] = None if retired is None else _RETIRED[retired]
    return Row(t[_SEQ], t[_KEY], command_of(CommandColumns._make(_command_of(t))), *state)


def command_of(v: CommandColumns) -> Command:
    """The command a row's columns hold."""
    op = _OP[v.op]
    args, inst, res, valid = v.args, v.obj_inst_id, v.res_id, v.valid_time
    try:
        return Command(
            imei=v.imei,
            obj_id=v.obj_id,
            obj_inst_id=None if inst == NO_ID else inst,
            res_id=None if res == NO_ID else res,
            expired_time=_time(v.expired_time),
            valid_time=None if valid is None else _time(valid),
            args=None if op is Op.WRITE else args,
            retry=v.retry,
            timeout=v.timeout,
            trigger_msg=v.trigger_msg,
            source=v.source,
            line=v.line,
            key=v.key,
            op=op,
            mode=v.mode,
            step=v.step,
            after=v.after_key or "",
            product=v.product or "",
            values=write_values(args) if op is Op.WRITE and args is not None else (),
        )
    except ValueError as exc:
        raise LedgerError(f"the ledger's row {v.key} cannot be read: {exc}") from exc


@functools.lru_cache(maxsize=_CACHE)
def _time(text: str) -> TimeSpec:
    """A time as the job wrote it, read back (fleets share a few)."""
    return parse_timespec(text)

"""A command's row in the SQLite ledger, column by column: what a new command fills, what a
read gives back, and the Row each becomes. The one place a row is converted, always by name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from dispatcher.ledger.records import Retired, Row, Status

if TYPE_CHECKING:
    from dispatcher.job.command import Command

__all__ = [
    "INSERT_COLUMNS",
    "INSERT_COMMAND",
    "NO_ID",
    "ROW_COLUMNS",
    "SELECT_ROWS",
    "insert_params",
    "new_row",
    "row_of",
]

NO_ID: Final = -1  # obj_inst_id or res_id a read leaves out (the columns are NOT NULL)
# The columns of a ledger Row, in its field order.
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
INSERT_COLUMNS: Final = (
    "key", "imei", "obj_id", "obj_inst_id", "res_id", "args", "valid_time", "expired_time",
    "retry", "timeout", "trigger_msg", "source", "line", "op", "mode", "step", "after_key",
    "product",
)  # fmt: skip
INSERT_COMMAND: Final = (
    f"INSERT INTO commands ({', '.join(INSERT_COLUMNS)})"
    f" VALUES ({', '.join('?' * len(INSERT_COLUMNS))}) ON CONFLICT(key) DO NOTHING"
)

_STATUS: Final = {s.value: s for s in Status}
_RETIRED: Final = {r.value: r for r in Retired}


def insert_params(c: Command) -> tuple[object, ...]:
    """The parameters of :data:`INSERT_COMMAND` for one command."""
    if not c.key:
        raise ValueError(f"{c.source}:{c.line}: command has no ledger key")
    valid = None if c.valid_time is None else c.valid_time.text
    inst = NO_ID if c.obj_inst_id is None else c.obj_inst_id
    res = NO_ID if c.res_id is None else c.res_id
    return (c.key, c.imei, c.obj_id, inst, res, c.args, valid, c.expired_time.text, c.retry,
            c.timeout, c.trigger_msg, c.source, c.line, c.op, c.mode, c.step,
            c.after or None, c.product or None)  # fmt: skip


def new_row(seq: int, c: Command) -> Row:
    """The row a newly registered command is (pending, nothing sent), as SQLite would hold it
    (for a ledger that keeps rows itself: memory.py)."""
    v: dict[str, Any] = dict(zip(INSERT_COLUMNS, insert_params(c), strict=True))
    v["obj_inst_id"] = None if v["obj_inst_id"] == NO_ID else v["obj_inst_id"]
    v["res_id"] = None if v["res_id"] == NO_ID else v["res_id"]
    return Row(seq=seq, status=Status.PENDING, errno=None, error="", uuid=None, attempts=0,
               first_attempt_at=None, last_attempt_at=None, latency_ms=None, sent_valid_time=None,
               sent_expired_time=None, reconciled=False, **v)  # fmt: skip


def row_of(t: tuple[Any, ...]) -> Row:
    """A Row from the columns of :data:`SELECT_ROWS`, each by its name."""
    v = dict(zip(ROW_COLUMNS, t, strict=True))
    if v["obj_inst_id"] == NO_ID:
        v["obj_inst_id"] = None
    if v["res_id"] == NO_ID:
        v["res_id"] = None
    v["status"] = _STATUS[v["status"]]
    v["reconciled"] = bool(v["reconciled"])
    v["retired"] = None if v["retired"] is None else _RETIRED[v["retired"]]
    return Row(**v)

"""A job row's layout and records: the field names in slot order, the slots each operation
needs, the checked row (``Checked``) and a ``Problem`` naming file, line and field.

A row is a tuple of texts in ``NAMES`` order (the readers build them; fields.py checks them).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal, NamedTuple

from dispatcher.model.command import Command, Op, WriteValue, at, command_key, key_of
from dispatcher.times import TimeSpec

__all__ = [
    "ARGS",
    "EXPIRED",
    "FIELDS",
    "IMEI",
    "MODE",
    "NAMES",
    "NEEDS",
    "OBJ_ID",
    "OBJ_INST_ID",
    "OP",
    "OPERATION",
    "PRODUCT",
    "REQUIRED",
    "RES_ID",
    "RETRY",
    "SLOT",
    "TIMEOUT",
    "TRIGGER",
    "TRIGGER_MSG",
    "VALID",
    "VALUE",
    "VALUES",
    "Checked",
    "PastTimes",
    "Problem",
    "TimeValue",
    "at",
    "checked_key",
    "command_of",
]

FIELDS = (
    "imei",
    "obj_id",
    "obj_inst_id",
    "res_id",
    "args",
    "valid_time",
    "expired_time",
    "retry",
    "timeout",
    "trigger_msg",
)
"""The command fields, in the order of a row's slots."""
NAMES = (*FIELDS, "trigger", "op", "mode", "value", "values", "product")
"""Every name a job file may use for a field; ``trigger`` is trigger_msg by names; ``values`` is
YAML's only (a mapping, carried as JSON text: ``[[res_id, text, infer], ...]``)."""
SLOT = {name: i for i, name in enumerate(NAMES)}
IMEI, OBJ_ID, OBJ_INST_ID, RES_ID, ARGS, VALID, EXPIRED, RETRY, TIMEOUT, TRIGGER_MSG, TRIGGER = (
    range(11)
)
OP, MODE, VALUE, VALUES, PRODUCT = range(11, 16)
OPERATION = (OBJ_ID, OBJ_INST_ID, RES_ID, ARGS, OP, MODE, VALUE, VALUES)
"""The slots that say what is done (a job with steps: gives them in each step)."""
REQUIRED = (OBJ_ID, OBJ_INST_ID, RES_ID, EXPIRED)
"""The fields an execute cannot do without (a CSV without their column needs a default)."""
NEEDS = {"execute": REQUIRED, "write": (OBJ_ID, OBJ_INST_ID, EXPIRED), "read": (OBJ_ID, EXPIRED)}
"""The fields each operation cannot do without."""
PastTimes = Literal["error", "warn", "allow"]
"""What a time already past is: an error, a warning (the command stays), or nothing."""


@dataclass(frozen=True, slots=True)
class Problem:
    """Something wrong in a job file, at a line; a warning does not stop the job."""

    file: str
    line: int
    field: str
    message: str
    warning: bool = False

    def __str__(self) -> str:
        where = at(self.file, self.line)
        return (
            f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        )


class TimeValue(NamedTuple):
    """A checked time: as written, and the instant it means at the checked start."""

    spec: TimeSpec
    when: datetime


class Checked(NamedTuple):
    """One checked row: every value final, ready to become a Command."""

    imei: str
    obj_id: int
    obj_inst_id: int
    res_id: int
    args: str | None  # an execute's args; a write's body (what its key digests)
    valid: TimeValue | None
    expired: TimeValue
    retry: int
    timeout: int
    trigger_msg: int
    op: Op
    mode: int | None  # a write's: 1 replace, 2 partial update
    notes: tuple[str, ...]  # what the registry says of a write's values (resources.py weighs it)
    values: tuple[WriteValue, ...]  # a write's, typed (its body is args)
    product: str  # the OneNET product (a lane of the config) it is sent through; "": the default
    key_tail: bytes  # the key's text after the imei, for occurrence 0 (command.key_tail)
    sent_tail: bytes  # the fingerprint's text after the key (command.sent_tail)
    source: str
    line: int
    pos: int  # unique position of the row in the job (file index << 40 | line)
    occurrence: int = 0
    step: int = 0  # of a job with steps: (1, 2, ...)
    after: Checked | None = None  # the device's previous step


def checked_key(c: Checked) -> str:
    """The ledger key of a checked row (a blake2b)."""
    if not c.occurrence:
        return key_of(c.imei, c.key_tail)
    return command_key(
        c.imei, c.obj_id, c.obj_inst_id, c.res_id, c.args, c.occurrence, c.op, c.mode, c.step
    )


def command_of(c: Checked) -> Command:
    """The Command of a checked row (sending: a blake2b per row, for its key)."""
    after = c.after
    return Command(
        imei=c.imei,
        obj_id=c.obj_id,
        obj_inst_id=c.obj_inst_id,
        res_id=c.res_id,
        expired_time=c.expired.spec,
        valid_time=None if c.valid is None else c.valid.spec,
        args=None if c.values else c.args,
        retry=c.retry,
        timeout=c.timeout,
        trigger_msg=c.trigger_msg,
        source=c.source,
        line=c.line,
        key=checked_key(c),
        occurrence=c.occurrence,
        op=c.op,
        mode=c.mode,
        step=c.step,
        after="" if after is None else checked_key(after._replace(occurrence=c.occurrence)),
        product=c.product,
        values=c.values,
    )

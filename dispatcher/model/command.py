"""One command for one device: the record, its ledger identity, and the fingerprint of a job.

The record is the one spelling of a command: a job's rows become it, the ledger keeps it (a row's
``command``), the client sends it, a retry job is written from it.

The key (``command_key``) names a command in the ledger: imei, ids, args and which copy it is. The
fingerprint covers everything else that is sent too, so an edited job file is told apart from the
one a ledger was started with, however its rows are ordered.

A command's share of the fingerprint is ``(imei + 1) * D mod P``, with D a 127-bit digest
(blake2b) of everything but the imei and P the prime 2**127 - 1: fleets repeat all but the imei,
so D is computed once per distinct row, and a million-row job costs a multiplication per row. The
job sums the shares modulo P: any edit of one command (or a command added or removed) changes the
sum, since neither factor of the difference is 0 modulo a prime.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from dispatcher.model.writes import WriteValue, body_text
from dispatcher.times import TimeSpec

__all__ = [
    "MODES",
    "OPS",
    "Command",
    "Op",
    "WriteValue",
    "args_text",
    "at",
    "command_fingerprint",
    "command_key",
    "fingerprint_part",
    "job_fingerprint",
    "key_of",
    "key_tail",
    "product_label",
    "sent_tail",
]

_blake2b = hashlib.blake2b
PRIME = (1 << 127) - 1  # a job's fingerprint sums its commands' shares modulo this


class Op(StrEnum):
    """A cached operation: POST /nbiot/execute/offline, POST /nbiot/offline, GET /nbiot/offline."""

    EXECUTE = "execute"
    WRITE = "write"
    READ = "read"


OPS = tuple(Op)
"""The cached operations, by name (each equal to its text)."""
MODES = {"replace": 1, "partial": 2}
"""A write's ``mode``, by name: OneNET's 1 (replace) and 2 (partial update)."""


@dataclass(frozen=True, slots=True)
class Command:
    """One cached command (execute, write or read) for one device, every value checked.

    An execute's ``args`` is the text sent (None: none). A write's ``values`` are what it sets,
    typed (its ``args`` is None; ``args_text`` gives the body they make), its ``res_id`` the
    resource when it writes one; a read's ``obj_inst_id`` and ``res_id`` may be None (a whole
    object or instance).
    """

    imei: str
    obj_id: int
    obj_inst_id: int | None
    res_id: int | None
    expired_time: TimeSpec
    valid_time: TimeSpec | None = None  # None: OneNET's default (server now)
    args: str | None = None
    retry: int = 3  # OneNET's device-side retries, 0..10
    timeout: int = 25  # 5..40
    trigger_msg: int = 7  # 1..7 bitmask 1 REGISTER, 2 UPDATE, 4 NOTIFY
    source: str = ""  # job file path as given (rows of targets_csv: the CSV's path)
    line: int = 0  # line of the target entry (YAML) or row (CSV, header = 1)
    key: str = ""  # ledger identity: see command_key()
    occurrence: int = 0  # which copy of the same command (allow_duplicates), part of the key
    op: Op = Op.EXECUTE
    mode: int | None = None  # a write's: 1 replace, 2 partial update
    step: int = 0  # its place in a job with steps: (1, 2, ...); 0 in a job without
    after: str = ""  # the key of the device's previous step, sent only once that is accepted
    product: str = ""  # the OneNET product (a lane) it goes through; "": the default one
    values: tuple[WriteValue, ...] = ()  # a write's, typed

    @property
    def where(self) -> str:
        """Where it was written, as every message says it: ``FILE:LINE``, ``FILE:SHEET!ROW``."""
        return at(self.source, self.line)


def at(file: str, line: int) -> str:
    """``FILE:LINE``, or for a sheet's row ``FILE:SHEET!ROW`` (its file ends in ``!``)."""
    return f"{file}{line}" if file.endswith("!") else f"{file}:{line}"


def product_label(product: str) -> str:
    """A product as messages name it: ``product NAME``, or ``product (default)`` for the
    commands that name none."""
    return f"product {product or '(default)'}"


def args_text(c: Command) -> str | None:
    """What a command's key digests and the ledger keeps as its ``args``: an execute's args, a
    write's body (encoded once per distinct body), None for a read."""
    if c.op == "write":
        return body_text(c.values)
    return c.args


def command_key(
    imei: str,
    obj_id: int,
    obj_inst_id: int | None,
    res_id: int | None,
    args: str | None,
    occurrence: int = 0,
    op: str = "execute",
    mode: int | None = None,
    step: int = 0,
) -> str:
    """The ledger identity of a command: blake2b (16 bytes, hex) of imei, operation, ids, args,
    step and occurrence.

    ``occurrence`` > 0 only for the 2nd, 3rd... copy of a command in a job with allow_duplicates.
    """
    return key_of(imei, key_tail(obj_id, obj_inst_id, res_id, args, occurrence, op, mode, step))


def key_tail(
    obj_id: int,
    obj_inst_id: int | None,
    res_id: int | None,
    args: str | None,
    occurrence: int = 0,
    op: str = "execute",
    mode: int | None = None,
    step: int = 0,
) -> bytes:
    """What follows the imei in the text a key digests: fleets repeat it, so it can be kept.

    An execute outside steps has the text it always had (ledgers keep their keys); any other
    operation, or a step, adds ``op``, ``mode`` and ``step`` to it.
    """
    tail = "\x00" if args is None else "\x01" + args
    inst = "" if obj_inst_id is None else obj_inst_id
    res = "" if res_id is None else res_id
    text = f"\x1f{obj_id}\x1f{inst}\x1f{res}\x1f{occurrence}\x1f{tail}"
    if op != "execute" or step or mode is not None:
        text += f"\x1f\x02{op}\x1f{'' if mode is None else mode}\x1f{step}"
    return text.encode()


def key_of(imei: str, tail: bytes) -> str:
    """command_key() from the imei and the rest of the key's text (``key_tail``)."""
    return hashlib.blake2b(imei.encode() + tail, digest_size=16).hexdigest()


def sent_tail(
    valid: str, expired: str, retry: int, timeout: int, trigger_msg: int, product: str = ""
) -> bytes:
    """What follows the key in the text a fingerprint part digests: the rest of what is sent.

    ``valid`` is '' when there is no valid_time (a TimeSpec's text is never empty, and holds no
    0x1f), so the joined text reads back one way only; a ``product`` is added when one is named.
    """
    text = f"\x1f{valid}\x1f{expired}\x1f{retry}\x1f{timeout}\x1f{trigger_msg}"
    if product:
        text += f"\x1f\x03{product}"
    return text.encode()


def fingerprint_part(key_tail: bytes, sent_tail: bytes) -> int:
    """The digest D of a command's share: of all that is sent for it but the imei (127 bits)."""
    digest = _blake2b(key_tail + sent_tail, digest_size=16).digest()
    return int.from_bytes(digest) % PRIME


def command_fingerprint(cmd: Command) -> int:
    """A command's share of its job's fingerprint (see the module docstring)."""
    valid = "" if cmd.valid_time is None else cmd.valid_time.text
    sent = sent_tail(
        valid, cmd.expired_time.text, cmd.retry, cmd.timeout, cmd.trigger_msg, cmd.product
    )
    tail = key_tail(
        cmd.obj_id, cmd.obj_inst_id, cmd.res_id, args_text(cmd), cmd.occurrence, cmd.op,
        cmd.mode, cmd.step,
    )  # fmt: skip
    return (int(cmd.imei) + 1) * fingerprint_part(tail, sent) % PRIME


def job_fingerprint(name: str, parts: int | Iterable[Command]) -> str:
    """The fingerprint (hex) of a job named ``name``: of its commands, or of their summed parts.

    The parts are summed, so the order of the rows does not change it; any field of any command
    (or the job's name) does.
    """
    if not isinstance(parts, int):
        parts = sum(command_fingerprint(cmd) for cmd in parts)
    material = name.encode("utf-8", "backslashreplace") + b"\x00" + (parts % PRIME).to_bytes(16)
    return hashlib.blake2b(material, digest_size=16).hexdigest()

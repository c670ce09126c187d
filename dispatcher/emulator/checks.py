"""The rules of one cached-command request (execute, write, read), as OneNET documents them
(docs/onenet-api.md).

Where the documentation is silent (the order of the checks), the choice is named here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Container, Mapping
from dataclasses import dataclass, replace

import orjson

from dispatcher.emulator.state import (
    AUTH_FAILED,
    BAD_PARAM,
    LOGIC_LIMIT,
    StoredCommand,
    parse_request_time,
)

__all__ = ["check_execute", "check_read", "check_write", "parse_args", "parse_id", "parse_int"]

ARGS_MAX_BYTES = 2048  # "Body: {"args": ...}, optional, at most 2 KB" (a write's body too)
_HEX = re.compile(r"[0-9A-Fa-f]*")


def parse_id(text: str | None) -> int | None:
    """A non-negative decimal int, or None."""
    if text and text.isascii() and text.isdigit():
        return int(text)
    return None


def parse_int(text: str) -> int | None:
    """A decimal int, sign allowed (so '-1' is out of range, not malformed), or None."""
    digits = text[1:] if text[:1] == "-" else text
    if digits and digits.isascii() and digits.isdigit():
        return int(text)
    return None


def parse_args(body: bytes) -> tuple[int, str | None]:
    """The optional JSON body -> (errno, args): 3 if malformed, 5006 if args is over 2 KB."""
    if not body.strip():
        return 0, None
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return BAD_PARAM, None
    if not isinstance(doc, dict):
        return BAD_PARAM, None
    args = doc.get("args")
    if args is None:
        return 0, None
    if not isinstance(args, str):
        return BAD_PARAM, None
    if len(args) > ARGS_MAX_BYTES // 4 and len(args.encode()) > ARGS_MAX_BYTES:
        return LOGIC_LIMIT, None
    return 0, args


def check_execute(
    query: Mapping[str, str], body: bytes, now: float, foreign: Container[str], uuid: str
) -> StoredCommand | int:
    """Check one execute/offline request as OneNET does: the command to store, or an errno.

    Order (not documented; chosen so each answer names the first real problem): malformed or
    missing parameters and body (3), then an imei outside the product (1), then limits (5006).
    """
    get = query.get
    imei = get("imei")
    obj_id = parse_id(get("obj_id"))
    obj_inst_id = parse_id(get("obj_inst_id"))
    res_id = parse_id(get("res_id"))
    if not _imei_ok(imei) or obj_id is None or obj_inst_id is None or res_id is None:
        return BAD_PARAM
    window = _window(get, now)
    if isinstance(window, int):
        return window
    args_errno, args = parse_args(body)
    if args_errno == BAD_PARAM:
        return BAD_PARAM
    assert imei is not None  # checked by _imei_ok
    if imei in foreign:
        return AUTH_FAILED
    if args_errno or not window.within_limits(now):
        return LOGIC_LIMIT
    return window.command(uuid, imei, obj_id, obj_inst_id, res_id, args, now, "EXECUTE")


def check_write(
    query: Mapping[str, str], body: bytes, now: float, foreign: Container[str], uuid: str
) -> StoredCommand | int:
    """Check one cached write (``POST /nbiot/offline``): imei, obj_id, obj_inst_id and ``mode``
    (1 replace, 2 partial update) in the query, the window and delivery parameters as for an
    execute, and a body ``{"data": [{"res_id": int, "type": 1|2?, "val": ...}]}`` of at most
    2 KB: ``type`` 1 is Opaque (val a hex string), 2 is Time (val in seconds); without a type,
    val is a JSON string, number or boolean. The data is kept, as JSON, in ``args``."""
    get = query.get
    imei = get("imei")
    obj_id = parse_id(get("obj_id"))
    obj_inst_id = parse_id(get("obj_inst_id"))
    mode = parse_id(get("mode"))
    if not _imei_ok(imei) or obj_id is None or obj_inst_id is None or mode is None:
        return BAD_PARAM
    window = _window(get, now)
    if isinstance(window, int):
        return window
    data = _write_data(body)
    if data is None:
        return BAD_PARAM
    assert imei is not None  # checked by _imei_ok
    if imei in foreign:
        return AUTH_FAILED
    if mode not in (1, 2) or len(body) > ARGS_MAX_BYTES or not window.within_limits(now):
        return LOGIC_LIMIT
    args = orjson.dumps(data).decode()
    command = window.command(uuid, imei, obj_id, obj_inst_id, None, args, now, "WRITE")
    return replace(command, mode=mode)


def check_read(
    query: Mapping[str, str], now: float, foreign: Container[str], uuid: str
) -> StoredCommand | int:
    """Check one cached read (``GET /nbiot/offline``): imei and obj_id, optionally obj_inst_id
    and res_id (a resource needs its instance), ``bin2hex`` optional, the window and delivery
    parameters as for an execute; no body."""
    get = query.get
    imei = get("imei")
    obj_id = parse_id(get("obj_id"))
    inst_text, res_text = get("obj_inst_id"), get("res_id")
    obj_inst_id = None if inst_text is None else parse_id(inst_text)
    res_id = None if res_text is None else parse_id(res_text)
    bin2hex = get("bin2hex")
    if (
        not _imei_ok(imei)
        or obj_id is None
        or (inst_text is not None and obj_inst_id is None)
        or (res_text is not None and res_id is None)
        or (res_id is not None and obj_inst_id is None)
        or (bin2hex is not None and bin2hex not in ("true", "false", "1", "0"))
    ):
        return BAD_PARAM
    window = _window(get, now)
    if isinstance(window, int):
        return window
    assert imei is not None  # checked by _imei_ok
    if imei in foreign:
        return AUTH_FAILED
    if not window.within_limits(now):
        return LOGIC_LIMIT
    return window.command(uuid, imei, obj_id, obj_inst_id, res_id, None, now, "READ")


def _imei_ok(imei: str | None) -> bool:
    return imei is not None and len(imei) == 15 and imei.isascii() and imei.isdigit()


@dataclass(frozen=True, slots=True)
class _Window:
    """The window and delivery parameters every cached command takes, as sent."""

    valid_text: str | None
    valid_at: float
    expired_text: str
    expired_at: float
    retry: int | None
    timeout: int | None
    trigger_msg: int | None

    def within_limits(self, now: float) -> bool:
        """The documented constraints (5006 when broken)."""
        retry, timeout, trigger = self.retry, self.timeout, self.trigger_msg
        return not (
            (self.valid_text is not None and self.valid_at <= now)
            or self.expired_at <= self.valid_at
            or self.expired_at <= now
            or (retry is not None and not 0 <= retry <= 10)
            or (timeout is not None and not 5 <= timeout <= 40)
            or (trigger is not None and not 1 <= trigger <= 7)
        )

    def command(
        self,
        uuid: str,
        imei: str,
        obj_id: int,
        obj_inst_id: int | None,
        res_id: int | None,
        args: str | None,
        now: float,
        kind: str,
    ) -> StoredCommand:
        """The command to store."""
        return StoredCommand(
            uuid=uuid,
            imei=imei,
            obj_id=obj_id,
            obj_inst_id=obj_inst_id,
            res_id=res_id,
            valid_time=self.valid_text,
            expired_time=self.expired_text,
            retry=self.retry,
            timeout=self.timeout,
            trigger_msg=self.trigger_msg,
            args=args,
            created_at=now,
            valid_at=self.valid_at,
            expired_at=self.expired_at,
            type=kind,
        )


def _window(get: Callable[[str], str | None], now: float) -> _Window | int:
    """The window and delivery parameters, or 3 when one is missing or malformed."""
    expired_text = get("expired_time")
    if expired_text is None:
        return BAD_PARAM
    expired_at = parse_request_time(expired_text)
    if expired_at is None:
        return BAD_PARAM
    valid_text = get("valid_time")
    valid_at = now if valid_text is None else parse_request_time(valid_text)
    if valid_at is None:
        return BAD_PARAM
    limits: list[int | None] = []
    for name in ("retry", "timeout", "trigger_msg"):
        text = get(name)
        value = None if text is None else parse_int(text)
        if text is not None and value is None:
            return BAD_PARAM
        limits.append(value)
    retry, timeout, trigger_msg = limits
    return _Window(valid_text, valid_at, expired_text, expired_at, retry, timeout, trigger_msg)


def _write_data(body: bytes) -> list[dict[str, object]] | None:
    """A write's ``data`` items, checked; None when the body is not as documented."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    data = doc.get("data") if isinstance(doc, dict) else None
    if not isinstance(data, list) or not data:
        return None
    for item in data:
        if not isinstance(item, dict) or type(item.get("res_id")) is not int:
            return None
        if item["res_id"] < 0 or set(item) - {"res_id", "type", "val"} or "val" not in item:
            return None
        kind, val = item.get("type"), item["val"]
        if kind == 1:  # Opaque: hex
            if not (isinstance(val, str) and len(val) % 2 == 0 and _HEX.fullmatch(val)):
                return None
        elif kind == 2:  # Time: seconds
            if type(val) is not int:
                return None
        elif kind is not None or not isinstance(val, (str, int, float, bool)):
            return None
    return data

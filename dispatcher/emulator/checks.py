"""The rules of one execute/offline request, as OneNET documents them (docs/onenet-api.md).

Where the documentation is silent (the order of the checks), the choice is named here.
"""

from __future__ import annotations

from collections.abc import Mapping

import orjson

from dispatcher.emulator.state import (
    AUTH_FAILED,
    BAD_PARAM,
    LOGIC_LIMIT,
    StoredCommand,
    parse_request_time,
)

__all__ = ["check_execute", "parse_args", "parse_id", "parse_int"]

ARGS_MAX_BYTES = 2048  # "Body: {"args": ...}, optional, at most 2 KB"


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
    query: Mapping[str, str], body: bytes, now: float, foreign: frozenset[str], uuid: str
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
    expired_text = get("expired_time")
    if (
        imei is None
        or len(imei) != 15
        or not (imei.isascii() and imei.isdigit())
        or obj_id is None
        or obj_inst_id is None
        or res_id is None
        or expired_text is None
    ):
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
    args_errno, args = parse_args(body)
    if args_errno == BAD_PARAM:
        return BAD_PARAM
    if imei in foreign:
        return AUTH_FAILED
    retry, timeout, trigger_msg = limits
    if (
        args_errno
        or (valid_text is not None and valid_at <= now)
        or expired_at <= valid_at
        or expired_at <= now
        or (retry is not None and not 0 <= retry <= 10)
        or (timeout is not None and not 5 <= timeout <= 40)
        or (trigger_msg is not None and not 1 <= trigger_msg <= 7)
    ):
        return LOGIC_LIMIT
    return StoredCommand(
        uuid=uuid,
        imei=imei,
        obj_id=obj_id,
        obj_inst_id=obj_inst_id,
        res_id=res_id,
        valid_time=valid_text,
        expired_time=expired_text,
        retry=retry,
        timeout=timeout,
        trigger_msg=trigger_msg,
        args=args,
        created_at=now,
        valid_at=valid_at,
        expired_at=expired_at,
    )

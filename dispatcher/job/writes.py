"""The values of a cached LwM2M write: typed by the OMA registry and encoded for OneNET's body.

OneNET's ``POST /nbiot/offline`` takes ``{"data": [{"res_id", "type"?, "val"}]}``, at most
MAX_BODY_BYTES: ``type`` 1 is Opaque (``val`` hex), 2 is Time (``val`` Unix seconds); any other
value goes without ``type``, as a JSON string, number or boolean. A resource the registry knows
is typed by it (a value that does not fit is a warning, sent as written all the same); one it does
not know (a vendor's) is inferred from the text, never a problem.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone, tzinfo

import orjson

from dispatcher.job.hints import unencodable
from dispatcher.job.values import Err
from dispatcher.lwm2m import Resource, lookup, resource
from dispatcher.model.writes import WriteValue, body_bytes
from dispatcher.times import BEIJING

__all__ = [
    "MAX_BODY_BYTES",
    "body_problem",
    "describe_value",
    "typed_value",
]

MAX_BODY_BYTES = 2048
"""The most OneNET takes in a write's body, in bytes of JSON."""

_OPAQUE = 1
_TIME = 2
_INT64 = (-(2**63), 2**63 - 1)
_UINT64 = (0, 2**64 - 1)
_MAX_DIGITS = 20  # 2**64 has 20 digits: more cannot fit, and int() of thousands of digits raises
_SHOWN_CHARS = 24  # of a value quoted in a message
_DESCRIBED_CHARS = 32  # of a string or hex value in describe_value

_WHOLE = re.compile(r"[+-]?[0-9]+")
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_HEX = re.compile(r"(?:0[xX])?((?:[0-9a-fA-F]{2})*)")
_HEX_DIGITS = re.compile(r"(?:0[xX])?[0-9a-fA-F]*")
_OBJLNK = re.compile(r"([0-9]{1,5}):([0-9]{1,5})")
_RANGE = re.compile(
    r"\s*([+-]?[0-9]+(?:\.[0-9]+)?)\s*\.\.\s*([+-]?[0-9]+(?:\.[0-9]+)?)(?:\s*bytes)?\s*", re.I
)
_DATETIME = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2})"
    r"(?::([0-9]{2})(?:[.,][0-9]{1,9})?)?"  # seconds, and a fraction (dropped)
    r"\s*(?:(?P<z>[Zz])|(?P<sign>[+-])(?P<zh>[0-9]{2}):?(?P<zm>[0-9]{2})?)?"
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SECOND = timedelta(seconds=1)
_BOOLEANS = {"true": True, "false": False, "1": True, "0": False}
_BOOLEANS.update({"yes": True, "no": False, "on": True, "off": False})
_YAML_BOOLEANS = {k: v for k, v in _BOOLEANS.items() if k not in ("1", "0")}
_EMPTY = "is empty: give the value to write"
_TIME_HINT = "write Unix seconds or 2026-12-01T02:00:00+08:00"


def typed_value(obj_id: int, res_id: int, text: str, infer: bool) -> WriteValue | Err:
    """The value ``text`` to write to ``obj_id``/``res_id``, typed by the registry; or an Err.

    ``infer``: the text's type may be inferred (a YAML plain scalar, a CSV cell); False for a
    YAML quoted string, a string wherever the registry does not say otherwise. An Err with
    ``keep`` is a warning, its ``keep`` the WriteValue to send all the same; without, an error.
    """
    if not text.isascii() and (problem := unencodable(text)):
        return Err(problem)
    res = resource(obj_id, res_id)
    if res is None or not res.type:  # not in the registry, or a type it does not give
        if not infer:
            return WriteValue(res_id, text)
        return WriteValue(res_id, _inferred(text, True)) if text.strip() else Err(_EMPTY)
    kind = res.type
    if kind == "String":
        return _string(res, text, infer)
    t = text.strip()
    if not t:
        return Err(_EMPTY)
    check = _CHECKS.get(kind)
    if check is None:  # Corelnk, or a type this module does not know: the text as written
        return WriteValue(res_id, text)
    return check(obj_id, res, text, t, infer)


def body_problem(values: Sequence[WriteValue]) -> str | None:
    """What is wrong with the size of the write's body, or None when OneNET takes it."""
    size = len(body_bytes(values))
    if size <= MAX_BODY_BYTES:
        return None
    return f"the write's body is {size:,} bytes; OneNET takes at most {MAX_BODY_BYTES:,}"


def describe_value(e: WriteValue) -> str:
    """A value, short, for messages: ``true``, ``40``, ``"coap://x"``, ``hex 0a0b``, ``time 1``."""
    val = e.val
    if e.type == _OPAQUE and isinstance(val, str):
        if not val:
            return "hex (0 bytes)"
        if len(val) <= _DESCRIBED_CHARS:
            return f"hex {val}"
        return f"hex {val[:_DESCRIBED_CHARS]}… ({len(val) // 2:,} bytes)"
    if e.type == _TIME:
        return f"time {val}"
    if isinstance(val, bool):
        return "true" if val else "false"
    if isinstance(val, str):
        if len(val) <= _DESCRIBED_CHARS:
            return orjson.dumps(val).decode()
        return orjson.dumps(val[: _DESCRIBED_CHARS - 1] + "…").decode() + f" ({len(val):,} chars)"
    return repr(val)


# -- the types ------------------------------------------------------------------------------


def _inferred(text: str, infer: bool) -> str | int | float | bool:
    """The value of text of no known type: a boolean, a number, or the text as written."""
    if not infer:
        return text
    t = text.strip()
    flag = _YAML_BOOLEANS.get(t.lower())
    if flag is not None:
        return flag
    if _WHOLE.fullmatch(t):
        digits = t.lstrip("+-")
        if len(digits) > 1 and digits[0] == "0":  # 0012: a code, not a number; keep its zeros
            return text
        if len(digits) <= _MAX_DIGITS and _INT64[0] <= (n := int(t)) <= _UINT64[1]:
            return n
        return text
    if _DECIMAL.fullmatch(t) and math.isfinite(x := float(t)):
        return x
    return text


def _string(res: Resource, text: str, infer: bool) -> WriteValue | Err:
    """A String: the text as written; a range bounds its length in UTF-8."""
    if not text and infer:
        return Err(_EMPTY)
    value = WriteValue(res.id, text)
    bounds = _range(res.range)
    if bounds is not None:
        size = len(text) if text.isascii() else len(text.encode("utf-8"))
        if not bounds[0] <= size <= bounds[1]:
            return _outside(res, f"{_shown(text)} is {size:,} bytes,", value)
    return value


def _integer(obj_id: int, res: Resource, text: str, t: str, infer: bool) -> WriteValue | Err:
    """An Integer or Unsigned Integer: a whole number that fits 64 bits, within its range."""
    unsigned = res.type == "Unsigned Integer"
    if not _WHOLE.fullmatch(t) or (unsigned and t.startswith("-")):
        return _mismatch(obj_id, res, text, infer)
    lo, hi = _UINT64 if unsigned else _INT64
    if len(t.lstrip("+-").lstrip("0")) > _MAX_DIGITS or not lo <= (n := int(t)) <= hi:
        keep = WriteValue(res.id, _inferred(text, infer))
        return Err(f"{_shown(t)} does not fit a 64-bit {res.type} ({_label(obj_id, res)})", keep)
    return _in_range(res, t, n, WriteValue(res.id, n))


def _float(obj_id: int, res: Resource, text: str, t: str, infer: bool) -> WriteValue | Err:
    """A Float: a whole or decimal number, with an exponent or not, finite; within its range."""
    if not _NUMBER.fullmatch(t):
        return _mismatch(obj_id, res, text, infer)
    x = float(t)
    if not math.isfinite(x):
        keep = WriteValue(res.id, _inferred(text, infer))
        return Err(f"{_shown(t)} is too large for a Float ({_label(obj_id, res)})", keep)
    return _in_range(res, t, x, WriteValue(res.id, x))


def _boolean(obj_id: int, res: Resource, text: str, t: str, infer: bool) -> WriteValue | Err:
    """A Boolean: true/false, yes/no, on/off or 1/0, in any case."""
    flag = _BOOLEANS.get(t.lower())
    if flag is None:
        return _mismatch(obj_id, res, text, infer, "write true or false")
    return WriteValue(res.id, flag)


def _opaque(obj_id: int, res: Resource, text: str, t: str, infer: bool) -> WriteValue | Err:
    """Opaque: bytes as hex digits (0x first or not, no spaces), within its range of bytes."""
    m = _HEX.fullmatch(t)
    if m is None:
        if _HEX_DIGITS.fullmatch(t):
            why = "has an odd number of hex digits: Opaque takes whole bytes"
        elif re.fullmatch(r"(?:0[xX])?[0-9a-fA-F\s:-]*", t):
            why = "has spaces or separators: write Opaque hex digits alone, e.g. 0a0b"
        else:
            why = "is not hex: write Opaque bytes as hex digits, e.g. 0a0b"
        return Err(f"{_shown(t)} {why} ({_label(obj_id, res)})", WriteValue(res.id, text))
    digits = m[1].lower()
    value = WriteValue(res.id, digits, _OPAQUE)
    bounds = _range(res.range)
    if bounds is not None and not bounds[0] <= (size := len(digits) // 2) <= bounds[1]:
        return _outside(res, f"{_shown(t)} is {size:,} bytes,", value)
    return value


def _time(obj_id: int, res: Resource, text: str, t: str, infer: bool) -> WriteValue | Err:
    """A Time: whole Unix seconds, or a date-time (Beijing time when it gives no zone)."""
    if _WHOLE.fullmatch(t) and not t.startswith("-"):
        if len(t.lstrip("+").lstrip("0")) <= _MAX_DIGITS and (n := int(t)) <= _INT64[1]:
            return WriteValue(res.id, n, _TIME)
        return _mismatch(obj_id, res, text, infer, _TIME_HINT)
    m = _DATETIME.fullmatch(t)
    if m is None:
        return _mismatch(obj_id, res, text, infer, _TIME_HINT)
    try:
        zone: tzinfo = BEIJING
        if m["z"]:
            zone = UTC
        elif m["sign"]:
            offset = timedelta(hours=int(m["zh"]), minutes=int(m["zm"] or 0))
            zone = timezone(-offset if m["sign"] == "-" else offset)
        y, mo, d, h, mi = (int(m[i]) for i in range(1, 6))
        at = datetime(y, mo, d, h, mi, int(m[6] or 0), tzinfo=zone)
    except ValueError as exc:
        return _mismatch(obj_id, res, text, infer, str(exc))
    seconds = (at - _EPOCH) // _SECOND
    if seconds < 0:
        return _mismatch(obj_id, res, text, infer, "it is before 1970")
    return WriteValue(res.id, seconds, _TIME)


def _objlnk(obj_id: int, res: Resource, text: str, t: str, infer: bool) -> WriteValue | Err:
    """An Objlnk: OBJECT:INSTANCE, each 0..65535."""
    m = _OBJLNK.fullmatch(t)
    if m is None or int(m[1]) > 65535 or int(m[2]) > 65535:
        return _mismatch(obj_id, res, text, infer, "write OBJECT:INSTANCE, each 0..65535")
    return WriteValue(res.id, t)


_CHECKS = {
    "Integer": _integer,
    "Unsigned Integer": _integer,
    "Float": _float,
    "Boolean": _boolean,
    "Opaque": _opaque,
    "Time": _time,
    "Objlnk": _objlnk,
}


# -- helpers --------------------------------------------------------------------------------


@functools.lru_cache(maxsize=512)
def _range(text: str) -> tuple[int | float, int | float] | None:
    """A registry range ``A..B`` (or ``A..B bytes``) as its bounds; None for any other form."""
    m = _RANGE.fullmatch(text)
    if m is None:
        return None
    lo, hi = (float(b) if "." in b else int(b) for b in (m[1], m[2]))
    return (lo, hi) if lo <= hi else None


def _in_range(res: Resource, t: str, n: int | float, value: WriteValue) -> WriteValue | Err:
    """``value`` when the number ``n`` is within the resource's range, else a warning."""
    bounds = _range(res.range)
    if bounds is not None and not bounds[0] <= n <= bounds[1]:
        return _outside(res, f"{_shown(t, quote=False)} is", value)
    return value


def _outside(res: Resource, what: str, value: WriteValue) -> Err:
    """The warning of a value outside the resource's range, sent as ``value`` all the same."""
    return Err(f"{what} outside {res.name}'s range {res.range.strip()}", value)


def _mismatch(obj_id: int, res: Resource, text: str, infer: bool, hint: str = "") -> Err:
    """The warning of a text that is not of the resource's type: sent as inferred all the same."""
    article = "an" if res.type[:1] in "AEIOU" else "a"
    how = f": {hint}" if hint else ""
    message = f"{_shown(text.strip())} is not {article} {res.type}{how} ({_label(obj_id, res)})"
    return Err(message, WriteValue(res.id, _inferred(text, infer)))


def _label(obj_id: int, res: Resource) -> str:
    """``3311/5851 Light Control · Dimmer``."""
    obj = lookup(obj_id)
    return f"{obj_id}/{res.id} {obj.name if obj else obj_id} · {res.name}"


def _shown(text: str, quote: bool = True) -> str:
    """A value for a message: quoted (or not), cut to a few characters."""
    if len(text) > _SHOWN_CHARS:
        text = text[: _SHOWN_CHARS - 1] + "…"
    return repr(text) if quote else text

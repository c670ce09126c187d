"""A cached write's typed values, and the JSON body they make (``{"data": [...]}``).

The body is what a write's key digests and what the ledger keeps in its ``args`` column; both
ways are cached, so a fleet's repeated body is encoded and parsed once. Pure: may import nothing
of the package.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import orjson

__all__ = ["WriteValue", "body_bytes", "body_text", "write_values"]

_CACHE = 4096  # distinct bodies kept each way


@dataclass(frozen=True, slots=True, eq=False)
class WriteValue:
    """One resource of a cached write, as OneNET's body carries it: ``type`` 1 is Opaque (``val``
    a hex string), 2 is Time (``val`` in seconds), None any other type (``val`` as JSON).

    Two values are equal only when their ``val`` has the same type too: ``True`` and ``1`` are
    sent as different JSON.
    """

    res_id: int
    val: str | int | float | bool
    type: int | None = None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, WriteValue):
            return NotImplemented
        return (
            self.res_id == other.res_id
            and self.type == other.type
            and self.val.__class__ is other.val.__class__
            and self.val == other.val
        )

    def __hash__(self) -> int:
        return hash((self.res_id, self.type, self.val.__class__, self.val))

    def item(self) -> dict[str, object]:
        """The body's item: ``{"res_id", "type"?, "val"}``, in OneNET's order (the order a
        write's key has always digested)."""
        if self.type is None:
            return {"res_id": self.res_id, "val": self.val}
        return {"res_id": self.res_id, "type": self.type, "val": self.val}


def _body(values: Sequence[WriteValue]) -> bytes:
    """The body's JSON bytes."""
    return orjson.dumps({"data": [v.item() for v in values]})


def body_bytes(values: Sequence[WriteValue]) -> bytes:
    """The write's body as compact JSON bytes (not cached: for a body being checked)."""
    return _body(values)


def body_text(values: Sequence[WriteValue]) -> str:
    """The write's body as compact JSON: ``{"data":[{"res_id":...,"val":...},...]}``."""
    global _last
    last = _last
    if values is last[0]:  # a fleet's rows share one tuple of values: no hashing at all
        return last[1]
    key = tuple(values)  # a tuple is not copied
    text = _text(key)
    _last = (key, text)
    return text


_last: tuple[tuple[WriteValue, ...], str] = ((), '{"data":[]}')


@functools.lru_cache(maxsize=_CACHE)
def _text(values: tuple[WriteValue, ...]) -> str:
    return _body(values).decode()


@functools.lru_cache(maxsize=_CACHE)
def write_values(body: str) -> tuple[WriteValue, ...]:
    """A write's values from its body (as body_text gives it); ValueError if it is not one."""
    try:
        items = orjson.loads(body)["data"]
        return tuple(WriteValue(int(v["res_id"]), v["val"], v.get("type")) for v in items)
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"not a write's body: {body[:40]!r}") from exc

"""The registry table: objects and their resources, looked up by id or found by name.

The table is gzip'd JSON of arrays (see scripts/build_lwm2m_registry.py for the layout), shipped
with the package and read lazily, once per process.
"""

from __future__ import annotations

import functools
import gzip
import json
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources as package_files
from types import MappingProxyType

from dispatcher.errors import DispatcherError

__all__ = ["LwM2MObject", "Resource", "describe", "find", "lookup", "objects", "resource"]

_TABLE = "registry.json.gz"
_FORMAT = 1


@dataclass(frozen=True, slots=True)
class Resource:
    """One resource of an object, as the registry defines it."""

    id: int
    name: str
    operations: str  # R, W, RW, E, or "" (none: an object link's target, say)
    type: str  # String, Integer, Float, Boolean, Opaque, Time, Objlnk, ...; "" for most E
    range: str  # RangeEnumeration as written, "" if none
    units: str
    multiple: bool
    mandatory: bool

    @property
    def executable(self) -> bool:
        """True when the resource can be executed (operations hold E)."""
        return "E" in self.operations


@dataclass(frozen=True, slots=True)
class LwM2MObject:
    """One object of the registry with its resources by id."""

    id: int
    name: str
    multiple: bool
    resources: Mapping[int, Resource]


@functools.cache
def _table() -> Mapping[int, LwM2MObject]:
    """The whole table, read from the package on first use."""
    try:
        raw = package_files.files(__package__).joinpath(_TABLE).read_bytes()
        table = json.loads(gzip.decompress(raw))
    except (OSError, ValueError) as exc:
        raise DispatcherError(
            f"the LwM2M registry table {_TABLE} is missing or damaged ({exc}): reinstall"
        ) from exc
    if table.get("format") != _FORMAT:
        raise DispatcherError(f"the LwM2M registry table has format {table.get('format')!r}")
    out: dict[int, LwM2MObject] = {}
    for oid, name, multiple, rows in table["objects"]:
        found = {row[0]: Resource(*row) for row in rows}
        out[oid] = LwM2MObject(oid, name, multiple, MappingProxyType(found))
    return MappingProxyType(out)


def objects() -> list[LwM2MObject]:
    """Every object of the registry, by id."""
    return list(_table().values())


def lookup(obj_id: int) -> LwM2MObject | None:
    """The object with this id, or None (not registered: a vendor's own, say)."""
    return _table().get(obj_id)


def resource(obj_id: int, res_id: int) -> Resource | None:
    """The resource ``res_id`` of object ``obj_id``, or None when either is not registered."""
    obj = _table().get(obj_id)
    return None if obj is None else obj.resources.get(res_id)


def find(text: str) -> list[LwM2MObject]:
    """The objects whose name holds ``text`` (case-insensitive), by id."""
    needle = text.casefold()
    return [obj for obj in _table().values() if needle in obj.name.casefold()]


def describe(obj_id: int, obj_inst_id: int | None, res_id: int | None) -> str:
    """``5/0/2 Firmware Update · Update (E)``; ``33000/0/1 (not in the registry)``; a path
    without its resource (``3/0 Device``) or instance names the object."""
    path = "/".join(str(part) for part in (obj_id, obj_inst_id, res_id) if part is not None)
    if obj_inst_id is None and res_id is not None:
        path = f"{obj_id}/*/{res_id}"
    obj = lookup(obj_id)
    if obj is None:
        return f"{path} (not in the registry)"
    if res_id is None:
        return f"{path} {obj.name}"
    res = obj.resources.get(res_id)
    if res is None:
        return f"{path} {obj.name} · resource {res_id} (not in the registry)"
    return f"{path} {obj.name} · {res.name} ({res.operations or 'no operations'})"

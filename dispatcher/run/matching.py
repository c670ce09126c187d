"""Which history items can be which in-doubt rows, and what that settles for certain.

OneNET's history does not show the LwM2M ids (obj_id, obj_inst_id, res_id), so two commands to one
device that differ only there look the same in it. An item is a *candidate* for a row when all the
history shows agrees with what the row sent. Rows and their candidates form a bipartite graph; each
connected component is settled on its own:

- one row and one or more items: that row was created (the earliest item is taken);
- one row and no item: it was never created, and may be sent;
- two or more rows: which item is whose cannot be known, so all of them stay in doubt (ambiguous).

Never guessing is the point: a row accepted with another row's uuid would mark a command as
delivered that never was, and send the other one twice.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import orjson

from dispatcher.ledger.store import Row
from dispatcher.onenet.client import HistoryItem
from dispatcher.times import parse_onenet

__all__ = ["Settled", "args_text", "listed_alike", "same_args", "settle_rows"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Settled:
    """What one device's history settles: rows found (with a uuid), never created, ambiguous."""

    found: list[tuple[Row, str]] = field(default_factory=list)
    missing: list[Row] = field(default_factory=list)
    ambiguous: list[tuple[Row, str]] = field(default_factory=list)


def listed_alike(row: Row, item: HistoryItem, start: datetime) -> bool:
    """Whether everything the history list shows of ``item`` agrees with what ``row`` sent.

    ``args`` is not in the list (only in the detail): compare it with ``args_text`` as well.
    """
    if item.type.upper() != row.command.op.upper():
        return False
    # A field the answer left out shows nothing that disagrees.
    if item.trigger_msg is not None and item.trigger_msg != row.command.trigger_msg:
        return False
    if item.create_time is not None and item.create_time < start:
        return False
    if row.sent_expired_time is None or item.expired_time != parse_onenet(row.sent_expired_time):
        return False
    # Without a valid_time, OneNET used its own clock: nothing to compare.
    return row.sent_valid_time is None or item.valid_time == parse_onenet(row.sent_valid_time)


def args_text(value: object) -> str:
    """``args`` as compared: a command sent without args shows none (or an empty string)."""
    return "" if value is None else str(value)


def same_args(row: Row, shown: object) -> bool:
    """Whether the ``args`` a detail shows agree with what ``row`` sent.

    An execute's are its command string, compared as text. A write's are its data: compared as
    data (the resources and values in order, whatever the JSON's spacing, or whether the body or
    only its list is shown); a detail that shows none, or none that reads as data, shows nothing
    that disagrees (two such writes in one window stay in doubt, never guessed).
    """
    command = row.command
    if command.op != "write":
        return args_text(shown) == args_text(command.args)
    theirs = _write_data(shown)
    return theirs is None or theirs == [(str(v.res_id), _value(v.val)) for v in command.values]


def _write_data(value: object) -> list[tuple[object, object]] | None:
    """A write's data as (res_id, val) pairs, from its body or list, as text or parsed."""
    if isinstance(value, str):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            return None
    if isinstance(value, dict):
        value = value.get("data")
    if not isinstance(value, list):
        return None
    pairs: list[tuple[object, object]] = []
    for item in value:
        if not isinstance(item, dict) or "res_id" not in item:
            return None
        pairs.append((str(item.get("res_id")), _value(item.get("val"))))
    return pairs


def _value(val: object) -> object:
    """A written value as compared: a number is one whether it is shown as JSON or as text."""
    if isinstance(val, bool):
        return val
    if isinstance(val, int | float):
        return float(val)
    text = str(val)
    try:
        number = float(text)
    except ValueError:
        return text
    return number if math.isfinite(number) else text


def settle_rows(rows: Sequence[Row], candidates: Mapping[int, Sequence[HistoryItem]]) -> Settled:
    """Settle one device's ``rows``, given each row's candidates (by index in ``rows``)."""
    parent = list(range(len(rows)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    holder: dict[str, int] = {}  # a uuid -> one of the rows it is a candidate for
    for i in range(len(rows)):
        for item in candidates.get(i, ()):
            j = holder.setdefault(item.uuid, i)
            parent[root(i)] = root(j)

    components: dict[int, list[int]] = {}
    for i in range(len(rows)):
        components.setdefault(root(i), []).append(i)

    settled = Settled()
    for members in components.values():
        items = {item.uuid: item for i in members for item in candidates.get(i, ())}
        if len(members) > 1:
            reason = _ambiguous_reason(len(members), len(items))
            settled.ambiguous.extend((rows[i], reason) for i in members)
        elif not items:
            settled.missing.append(rows[members[0]])
        else:
            row = rows[members[0]]
            uuid = _earliest(list(items.values()))
            if len(items) > 1:
                log.warning(
                    "device %s holds more than one matching command (%d) for %s; taking %s,"
                    " the earliest created",
                    row.command.imei,
                    len(items),
                    row.key,
                    uuid,
                )
            settled.found.append((row, uuid))
    return settled


def _earliest(items: list[HistoryItem]) -> str:
    """The uuid created first (the first attempt made it); items without a time go last."""
    dated = [(i.create_time, n) for n, i in enumerate(items) if i.create_time is not None]
    return items[min(dated)[1]].uuid if dated else items[0].uuid


def _ambiguous_reason(rows: int, items: int) -> str:
    found = f"{items} matching command{'' if items == 1 else 's'} found"
    return (
        f"{rows} commands to this device that the history cannot tell apart"
        f" (same type, trigger, window and args); {found}"
    )

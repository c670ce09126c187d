"""A YAML job's ``targets_query:``: which devices of a product OneNET's device list gives as the
job's targets, read into a ``TargetsQuery``; and the rows its devices become once resolved.

The keys: ``product`` (a product of the config's ``products:``; default: the job's product, or
the default lane), ``tag``, ``online`` (true or false), ``key_words``, ``created_after`` and
``created_before`` (absolute times, Beijing time unless a zone is given, as the job's other
times), ``limit`` (the most devices taken). Every problem names the line and the key
(``targets_query.online``), all of them reported, not only the first. The query is resolved at
run time (run/targets.py); its devices, frozen into the ledger at the first run, come back as
``Job.queried``, and each becomes a target row with the job's defaults (and steps), cited in
messages as ``job.yaml: targets_query device:N``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from yaml.nodes import MappingNode, Node, ScalarNode

from dispatcher.job.entries import node_key, node_line, node_text
from dispatcher.job.fields import RowChecker
from dispatcher.job.rows import IMEI, NAMES, PRODUCT, Checked, Problem
from dispatcher.job.steps import each_step
from dispatcher.job.values import suggest
from dispatcher.times import format_onenet, parse_timespec

__all__ = [
    "KEYS",
    "QUERY_POS",
    "QUERY_SOURCE",
    "SAMPLE_IMEI",
    "TargetsQuery",
    "parse_moment",
    "query_rows",
    "read_query",
]

KEYS: Final = (
    "product",
    "tag",
    "online",
    "key_words",
    "created_after",
    "created_before",
    "limit",
)
QUERY_SOURCE: Final = "targets_query device"  # a queried row's source: "job.yaml: ...:12"
SAMPLE_IMEI: Final = "490154203237518"
"""The device a query's commands are checked on before its devices are known (validate): any
valid IMEI does; this is the one the IMEI standard gives as its example."""
QUERY_POS: Final = 2 << 40  # a queried device's position in the job: QUERY_POS | its number
_TRUE, _FALSE = ("true", "yes", "on"), ("false", "no", "off")
_EMPTY = "is empty (null): give a value, or leave the key out"
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


@dataclass(frozen=True, slots=True)
class TargetsQuery:
    """Which devices a job targets, as its ``targets_query:`` says (None: not given)."""

    line: int  # of the key targets_query
    product: str | None = None  # None: the job's product (its defaults), or the default lane
    tag: str | None = None
    online: bool | None = None
    key_words: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    limit: int | None = None

    def describe(self) -> str:
        """The filters for people (``tag=meters, online=true``; ``no filter``)."""
        parts = [f"tag={self.tag}"] if self.tag is not None else []
        if self.online is not None:
            parts.append(f"online={'true' if self.online else 'false'}")
        if self.key_words is not None:
            parts.append(f"key_words={self.key_words}")
        if self.created_after is not None:
            parts.append(f"created_after={format_onenet(self.created_after)}")
        if self.created_before is not None:
            parts.append(f"created_before={format_onenet(self.created_before)}")
        if self.limit is not None:
            parts.append(f"limit={self.limit}")
        return ", ".join(parts) or "no filter"


def read_query(node: Node, line: int, source: str, problems: list[Problem]) -> TargetsQuery:
    """The query of a ``targets_query:`` value (its key on ``line``); its problems go to
    ``problems`` (a query with problems is still given, with the wrong keys left out)."""
    path = "targets_query"
    query = TargetsQuery(line)
    if not isinstance(node, MappingNode):
        empty = isinstance(node, ScalarNode) and node_text(node) is None
        message = "must be a mapping of filters (tag:, online:, ...), or {} for every device"
        problems.append(Problem(source, line, path, _EMPTY if empty else message))
        return query
    given: dict[str, object] = {}
    seen: dict[str, int] = {}
    for knode, vnode in node.value:
        key, kline = node_key(knode), node_line(knode)
        where = f"{path}.{key or '?'}"
        if key not in KEYS:
            hint = suggest(key, KEYS) or f" (use {', '.join(KEYS)})"
            problems.append(Problem(source, kline, where, f"unknown field{hint}"))
            continue
        if key in seen:
            message = f"given twice (first on line {seen[key]})"
            problems.append(Problem(source, kline, where, message))
            continue
        seen[key] = kline
        text = node_text(vnode)
        if text is None or not isinstance(vnode, ScalarNode):
            what = _EMPTY if isinstance(vnode, ScalarNode) else "must be one value"
            problems.append(Problem(source, node_line(vnode), where, what))
            continue
        try:
            given[key] = _parse(key, text.strip())
        except ValueError as exc:
            problems.append(Problem(source, node_line(vnode), where, str(exc)))
    after, before = given.get("created_after"), given.get("created_before")
    if isinstance(after, datetime) and isinstance(before, datetime) and after >= before:
        message = "must be later than created_after: no device can be created in between"
        problems.append(Problem(source, seen["created_before"], f"{path}.created_before", message))
    return TargetsQuery(line, **given)  # type: ignore[arg-type]  # each key parsed to its type


def parse_moment(text: str) -> datetime:
    """A creation time of a query: an absolute time (UTC+8 unless a zone is given), or a date
    (its midnight, UTC+8); ValueError saying what to give (a relative time is no moment)."""
    text = text.strip()
    if _DATE.fullmatch(text):
        text += "T00:00:00"
    try:
        spec = parse_timespec(text)
    except ValueError:
        spec = None
    if spec is None or spec.at is None:
        raise ValueError(
            f"{text!r} is not a moment: give a date such as 2026-01-01 or a time such as"
            " 2026-01-01T08:30:00 (UTC+8 unless a zone is given)"
        )
    return spec.at


def _parse(key: str, text: str) -> object:
    """One key's value: a text, a boolean, a moment or a count; ValueError saying what to give."""
    if key == "online":
        if text.lower() in _TRUE + _FALSE:
            return text.lower() in _TRUE
        raise ValueError(f"{text!r} must be true or false")
    if key == "limit":
        if not text.isdigit() or int(text) < 1:
            raise ValueError(f"{text!r} must be a whole number of devices, at least 1")
        return int(text)
    if key in ("created_after", "created_before"):
        return parse_moment(text)
    if not text:
        raise ValueError("is empty: give a value, or leave the key out")
    return text


def query_rows(
    checkers: list[RowChecker], imeis: Sequence[str], product: str | None, skip: frozenset[str]
) -> Iterator[Checked | Problem]:
    """The rows of the queried devices (one per step), and their problems (``_raw``'s)."""
    for number, raw in _raw(imeis, product, skip):
        check = functools.partial(RowChecker.check, raw=raw, line=number, pos=QUERY_POS | number)
        rows, problems = each_step(checkers, check)
        yield from problems
        yield from rows


def _raw(
    imeis: Sequence[str], product: str | None, skip: frozenset[str]
) -> Iterator[tuple[int, tuple[str | None, ...]]]:
    """Each queried device as a target row (its number from 1, and the raw texts: the IMEI and
    the query's product, the rest from the defaults), leaving out those in ``skip`` (listed by
    the job's own targets, whose row is taken instead)."""
    for number, imei in enumerate(imeis, 1):
        if imei in skip:
            continue
        raw: list[str | None] = [None] * len(NAMES)
        raw[IMEI] = imei
        if product is not None:
            raw[PRODUCT] = product
        yield number, tuple(raw)

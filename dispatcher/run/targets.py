"""Resolving a job's ``targets_query`` through its product's lane: the device list read page by
page (each page a slot of the lane's pace, under its slow-down, asked again as a status query is
when no usable answer came), up to the query's ``limit``; and how today's answer differs from the
frozen list.

A page is ``PER_PAGE`` (100) devices, the most either platform gives; the legacy list ends at page
10,000, so a query with more left there is refused (narrow it). A refused list (an errno: a key
that may not list devices) and a query that matches nothing are ``TargetsUnresolved`` naming the
product; nothing is sent. A device listed twice (pages shift while read) is taken once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from dispatcher.config import RetrySettings
from dispatcher.errors import Interrupted, OneNetUnavailable, TargetsUnresolved
from dispatcher.job.query import TargetsQuery
from dispatcher.model.command import product_label
from dispatcher.onenet.devices import MAX_PAGE, PER_PAGE, Device, DevicePage, Filters
from dispatcher.run.lane import Lane
from dispatcher.run.retrying import retry_query
from dispatcher.run.state import Stop

__all__ = ["Changes", "PageSource", "Resolved", "changes", "filters_of", "resolve"]


class PageSource(Protocol):
    """What resolving needs of a device list (``DeviceLister`` is one): one page of it."""

    async def page(self, filters: Filters, number: int) -> DevicePage:
        """Page ``number`` (from 1) of the devices that pass ``filters``."""
        ...


@dataclass(frozen=True, slots=True)
class Resolved:
    """What a query found: its devices in the order listed, and what it cost."""

    product: str  # the lane it was resolved through ("": the default)
    filters: str  # the query's filters for people
    devices: tuple[Device, ...]
    pages: int  # pages of the device list read
    calls: int  # device-list calls made (pages, and any asked again)
    limited: bool = False  # the query's limit stopped the listing

    def per_thousand(self) -> float:
        """Device-list calls per 1,000 devices found (the benchmark's figure)."""
        return 1000 * self.calls / len(self.devices) if self.devices else 0.0


def filters_of(query: TargetsQuery) -> Filters:
    """The device-list filters of a job's query."""
    return Filters(
        tag=query.tag,
        online=query.online,
        key_words=query.key_words,
        created_after=query.created_after,
        created_before=query.created_before,
    )


async def resolve(
    query: TargetsQuery,
    product: str,
    lane: Lane,
    source: PageSource,
    retry: RetrySettings,
    *,
    stop: Stop,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    empty_ok: bool = False,
) -> Resolved:
    """The devices ``query`` finds on ``product``'s list through ``lane``; TargetsUnresolved
    when the list is refused, cannot be read, is too long, or (unless ``empty_ok``) has no
    matching device; Interrupted when stopped."""
    filters, label = filters_of(query), product_label(product)
    found: dict[str, Device] = {}
    calls = pages = listed = 0
    policy = retry_query(retry, stop=stop, sleep=stop.sleeper(sleep))

    for number in range(1, MAX_PAGE + 1):
        if stop.requested:
            raise Interrupted(f"stopped while listing the devices of {label}: nothing was sent")

        async def one(number: int = number) -> DevicePage:
            nonlocal calls
            await lane.pace.acquire()
            calls += 1
            return await lane.query(lambda: source.page(filters, number))

        try:
            page = await policy(one)
        except OneNetUnavailable as exc:
            raise _unresolved(exc, label) from exc
        pages += 1
        listed += page.listed
        for device in page.devices:
            found.setdefault(device.imei, device)
            if query.limit is not None and len(found) >= query.limit:
                return Resolved(product, query.describe(), _of(found), pages, calls, True)
        if page.last or (page.total is not None and listed >= page.total):
            break
    else:
        raise TargetsUnresolved(
            f"the query lists more than {MAX_PAGE:,} pages of {PER_PAGE} devices of {label}"
            f" ({query.describe()}): narrow it (tag, online, key_words, created_after,"
            " created_before) or give a limit"
        )
    if not found and not empty_ok:
        raise TargetsUnresolved(f"the query matched no device of {label}: {query.describe()}")
    return Resolved(product, query.describe(), _of(found), pages, calls)


def _of(found: dict[str, Device]) -> tuple[Device, ...]:
    return tuple(found.values())


def _unresolved(exc: OneNetUnavailable, label: str) -> TargetsUnresolved:
    if exc.errno is not None:
        return TargetsUnresolved(
            f"OneNET refused the device list of {label} (errno {exc.errno}): {exc}; check that"
            " its key may list the product's devices; nothing was sent",
            errno=exc.errno,
        )
    return TargetsUnresolved(
        f"the device list of {label} could not be read: {exc}; nothing was sent"
    )


@dataclass(frozen=True, slots=True)
class Changes:
    """How today's answer to a query differs from the frozen list."""

    added: tuple[Device, ...]  # found today, not frozen
    dropped: tuple[str, ...]  # frozen IMEIs the query no longer finds


def changes(frozen: Sequence[str], today: Sequence[Device]) -> Changes:
    """What the query would add to, and drop from, the frozen list today."""
    held, now = set(frozen), {d.imei for d in today}
    return Changes(
        tuple(d for d in today if d.imei not in held),
        tuple(imei for imei in frozen if imei not in now),
    )

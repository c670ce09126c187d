"""A job's targets from OneNET for a use case: its ``targets_query`` resolved through its
product's lane, and, for a run, the devices the job sends to: the frozen list of its ledger when
there is one (today's answer only said as devices it would add or drop, taken with
``refresh``), else today's answer, to be frozen at the first run.

A device the job's own targets list too is sent its own target's row, once (job/query.py).

May import: errors, config, job, ledger, onenet, run, app (keys, clients, events). The client
(and aiohttp with it) is loaded only when a query is resolved.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from dispatcher.app.keys import lane_keys
from dispatcher.app.retrying import n_of
from dispatcher.config import Settings
from dispatcher.errors import ConfigError, TargetsUnresolved
from dispatcher.job.model import Job
from dispatcher.job.query import TargetsQuery
from dispatcher.job.rows import PRODUCT
from dispatcher.ledger.address import LedgerAddress
from dispatcher.ledger.opening import ledger_exists, open_ledger
from dispatcher.ledger.targets import FrozenTarget
from dispatcher.model.command import product_label

if TYPE_CHECKING:
    from dispatcher.app.events import Driver, Events
    from dispatcher.onenet.client import OneNetClient
    from dispatcher.onenet.devices import DeviceLister
    from dispatcher.run.state import Stop
    from dispatcher.run.targets import Resolved

__all__ = [
    "Confirm",
    "JobTargets",
    "lister_of",
    "query_product",
    "resolve_query",
    "targets_of",
]


@dataclass(frozen=True, slots=True)
class JobTargets:
    """The devices a run of a job with a query sends to, and what it found out about them."""

    product: str  # the lane the query is of ("": the default)
    filters: str  # the query's filters, for people
    devices: int  # queried devices the job sends to (frozen, or found today)
    found: int  # devices today's answer found
    pages: int  # device-list pages read today
    calls: int  # device-list calls made today (pages and those asked again)
    frozen: int  # devices frozen before this run (0: a first run)
    added: int  # found today and not frozen (taken only with refresh)
    dropped: int  # frozen and not found today (kept: never cancelled or removed)
    to_freeze: tuple[FrozenTarget, ...]  # what this run freezes before it sends

    @property
    def label(self) -> str:
        """The product as messages name it."""
        return product_label(self.product)


Confirm = Callable[[JobTargets], bool]
"""The caller's yes before a run freezes and sends to the devices a query found."""


def query_product(job: Job, query: TargetsQuery) -> str:
    """The product a query lists: its own, else the job's (its defaults), else the default."""
    if query.product is not None:
        return query.product.strip()
    return (job.defaults.values[PRODUCT] or "").strip()


def lister_of(client: OneNetClient, settings: Settings) -> DeviceLister:
    """The device list of the settings' platform; on the newer one, of the product its token
    is for (``onenet.token.res``: ``products/{pid}``), ConfigError when it names none."""
    from dispatcher.onenet.devices import DeviceLister

    token = settings.onenet.token
    if client.platform != "iot-api":
        return DeviceLister(client)
    res = token.res if token is not None else ""
    parts = res.split("/")
    if len(parts) < 2 or parts[0] != "products" or not parts[1]:
        raise ConfigError(
            f"onenet.token.res: {res!r} names no product: the newer platform's device list"
            " needs products/{pid} (the product's access key)"
        )
    return DeviceLister(client, parts[1])


async def resolve_query(
    settings: Settings,
    product: str,
    key: str,
    query: TargetsQuery,
    *,
    stop: Stop,
    empty_ok: bool = False,
) -> Resolved:
    """Today's answer to ``query`` on ``product`` (its lane's settings and key); with
    ``empty_ok``, no device found is an empty answer, not an error."""
    from dispatcher.app.clients import open_session
    from dispatcher.run.lane import Lane
    from dispatcher.run.targets import resolve

    async with open_session(settings, key) as client:
        lane = Lane.of(client, settings)
        lister = lister_of(client, settings)
        return await resolve(
            query, product, lane, lister, settings.retry, stop=stop, empty_ok=empty_ok
        )


def targets_of(
    job: Job,
    ledger_path: LedgerAddress,
    settings: Settings,
    *,
    refresh: bool,
    events: Events,
    drive: Driver,
) -> tuple[Job, JobTargets]:
    """The job with its queried devices (``Job.queried``): the ledger's frozen list, the devices
    today's answer adds to it with ``refresh``, or (a first run) today's answer. The count,
    product and filters, and on a rerun what today's answer would add or drop, go to
    ``events``. TargetsUnresolved when a first run's query cannot be resolved (nothing is
    sent); a rerun whose query cannot be resolved today is warned of and sends to the frozen
    list (nothing added)."""
    from dispatcher.run.targets import changes

    query = job.query
    assert query is not None  # a job with a targets_query
    product = query_product(job, query)
    label = product_label(product)
    frozen = _frozen(ledger_path)
    lane, key = lane_keys(settings, [product], events).lanes[product]
    try:
        resolved = drive(
            lambda stop: resolve_query(lane, product, key, query, stop=stop, empty_ok=bool(frozen))
        )
    except TargetsUnresolved as exc:
        if not frozen:
            raise
        events.warn(
            f"targets_query: today's answer could not be had ({exc}); the job's devices are the"
            f" {len(frozen):,} frozen in its ledger, and none is added"
        )
        imeis = tuple(t.imei for t in frozen)
        empty = JobTargets(product, query.describe(), len(frozen), 0, 0, 0, len(frozen), 0, 0, ())
        return replace(job, queried=imeis), empty
    today = [FrozenTarget(d.imei, d.id) for d in resolved.devices]
    events.note(
        f"targets_query: {n_of(len(today), 'device')} of {label} ({resolved.filters}),"
        f" {n_of(resolved.calls, 'device-list call')}"
    )
    if not frozen:
        queried, to_freeze, added, dropped = today, today, len(today), 0
    else:
        found = changes([t.imei for t in frozen], resolved.devices)
        added, dropped = len(found.added), len(found.dropped)
        new = [FrozenTarget(d.imei, d.id) for d in found.added]
        to_freeze = new if refresh else []
        queried = [*frozen, *to_freeze]
        taken = (
            "taken by --refresh-targets" if refresh else "not taken: --refresh-targets takes them"
        )
        events.note(
            f"targets_query: the job's devices are the {len(frozen):,} frozen in its ledger;"
            f" today the query would add +{added:,} ({taken}) and drop -{dropped:,} (kept, never"
            " cancelled)"
        )
    targets = JobTargets(
        product,
        resolved.filters,
        len(queried),
        len(today),
        resolved.pages,
        resolved.calls,
        len(frozen),
        added,
        dropped,
        tuple(to_freeze),
    )
    return replace(job, queried=tuple(t.imei for t in queried)), targets


def _frozen(path: LedgerAddress) -> list[FrozenTarget]:
    """The frozen list of the ledger at ``path`` (none: no ledger yet)."""
    if not ledger_exists(path):
        return []
    with open_ledger(path, read_only=True) as ledger:
        return ledger.frozen_targets()

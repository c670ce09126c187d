"""A job's products against the config: each product it names must be one of ``products:``, and
each lane gets its settings and its key from the environment before anything is sent."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass

from dispatcher.cli import console
from dispatcher.cli.exits import fail
from dispatcher.cli.lanes import open_session
from dispatcher.config import Settings, api_key_from_env, plain_http_warning
from dispatcher.errors import DispatcherError
from dispatcher.job.model import Problem, Validation
from dispatcher.onenet.client import OneNetClient

__all__ = ["LaneKeys", "lane_keys", "open_clients", "product_problems"]


@dataclass(frozen=True, slots=True)
class LaneKeys:
    """What each lane of a run needs: by product ("" for the commands that name none), its
    settings and its key (the api-key, or the access key of the newer platform)."""

    lanes: Mapping[str, tuple[Settings, str]]


def product_problems(checked: Validation, settings: Settings, config: str | None) -> list[Problem]:
    """The products a job names that the config does not: an error at the first command of each."""
    found = []
    for name, (source, line) in checked.product_at.items():
        if not name or name in settings.products:
            continue
        where = f"in {config}" if config else "without --config"
        known = ", ".join(sorted(settings.products)) or "none"
        message = f"no product {name!r} {where} (products: {known})"
        found.append(Problem(source, line, "product", message))
    return found


def lane_keys(settings: Settings, products: Iterable[str]) -> LaneKeys:
    """Each lane's settings and key, for these products ("": the top-level sections'); exits
    with a clear message (nothing sent) when a product is not in the config or a key is not set."""
    lanes: dict[str, tuple[Settings, str]] = {}
    for name in sorted(products):
        try:
            lane = settings.for_product(name)
        except DispatcherError as exc:
            fail(str(exc))
        try:
            key = api_key_from_env(lane)
        except DispatcherError as exc:
            fail(f"product {name}: {exc}" if name else str(exc))
        console.redact(key)
        warning = plain_http_warning(lane.onenet.base_url, lane.onenet.platform)
        if warning:
            console.warn(f"product {name}: {warning}" if name else warning)
        lanes[name] = (lane, key)
    return LaneKeys(lanes)


@contextlib.asynccontextmanager
async def open_clients(keys: LaneKeys) -> AsyncIterator[dict[str, OneNetClient]]:
    """A client over its own transport for each lane (its pool sized to its lane)."""
    async with contextlib.AsyncExitStack() as stack:
        clients = {}
        for name, (lane, key) in keys.lanes.items():
            clients[name] = await stack.enter_async_context(open_session(lane, key))
        yield clients

"""OneNET clients for a use case: one over its own transport (aiohttp's) per lane, with the
lane's timeout and pool size, and the platform's authentication (an api-key, or a signed token).

May import: errors, config, onenet, run (lane), app.keys.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from dispatcher.app.keys import LaneKeys
from dispatcher.config import Settings
from dispatcher.errors import ConfigError
from dispatcher.onenet.aiohttp_transport import AiohttpTransport
from dispatcher.onenet.auth import TokenSource
from dispatcher.onenet.client import OneNetClient
from dispatcher.onenet.transport import Transport
from dispatcher.run.lane import Lane

__all__ = ["client_of", "open_clients", "open_lane", "open_session"]


@contextlib.asynccontextmanager
async def open_session(settings: Settings, api_key: str) -> AsyncIterator[OneNetClient]:
    """A OneNET client over one aiohttp transport with the settings' timeout and pool size."""
    async with AiohttpTransport.open(
        timeout_s=settings.retry.request_timeout_s, limit=settings.limits.concurrency
    ) as transport:
        yield client_of(transport, settings, api_key)


def client_of(transport: Transport, settings: Settings, key: str) -> OneNetClient:
    """The client of the settings' platform: an api-key, or a token signed with the access key
    (``key``) of the newer platform; ConfigError when the token cannot be made."""
    onenet = settings.onenet
    token = onenet.token
    if onenet.platform != "iot-api" or token is None:
        return OneNetClient(transport, onenet.base_url, key)
    try:
        source = TokenSource(
            key, token.res, method=token.method, version=token.version, lifetime_s=token.lifetime
        )
    except ValueError as exc:
        raise ConfigError(f"onenet.token: {exc}") from exc
    return OneNetClient(transport, onenet.base_url, platform="iot-api", token=source)


@contextlib.asynccontextmanager
async def open_lane(settings: Settings, api_key: str) -> AsyncIterator[Lane]:
    """A lane (pace, slow-down, breakers, clock) over a fresh client session."""
    async with open_session(settings, api_key) as client:
        yield Lane.of(client, settings)


@contextlib.asynccontextmanager
async def open_clients(keys: LaneKeys) -> AsyncIterator[dict[str, OneNetClient]]:
    """A client over its own transport for each lane (its pool sized to its lane)."""
    async with contextlib.AsyncExitStack() as stack:
        clients = {}
        for name, (lane, key) in keys.lanes.items():
            clients[name] = await stack.enter_async_context(open_session(lane, key))
        yield clients

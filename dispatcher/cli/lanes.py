"""What every command that talks to OneNET shares: its settings and api-key from the config and
the command line, and a lane over one transport (aiohttp's)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import click

from dispatcher.cli import console
from dispatcher.cli.exits import fail
from dispatcher.config import Settings, api_key_from_env, load_settings, plain_http_warning
from dispatcher.errors import ConfigError, DispatcherError
from dispatcher.onenet.aiohttp_transport import AiohttpTransport
from dispatcher.onenet.auth import TokenSource
from dispatcher.onenet.client import OneNetClient
from dispatcher.onenet.transport import Transport
from dispatcher.run.lane import Lane

__all__ = ["open_lane", "open_session", "settings_and_key"]


def settings_and_key(
    config_path: Path | None,
    *,
    rate: float | None = None,
    concurrency: int | None = None,
    base_url: str | None = None,
    need_key: bool = True,
) -> tuple[Settings, str]:
    """The settings with the command line's overrides, and the api-key from the environment
    (masked in every message from now on; "" when not ``need_key``, and when the config names
    products: each lane's key is read for its own, products.py); exits with a clear message
    when either is wrong."""
    try:
        settings = load_settings(config_path)
    except DispatcherError as exc:
        fail(str(exc))
    try:
        settings = settings.with_overrides(
            rate="keep" if rate is None else rate, concurrency=concurrency, base_url=base_url
        )
    except ConfigError as exc:
        raise click.UsageError(str(exc).removeprefix("command line: ")) from None
    if not need_key or settings.products:
        return settings, ""
    try:
        api_key = api_key_from_env(settings)
    except DispatcherError as exc:
        fail(str(exc))
    console.redact(api_key)
    warning = plain_http_warning(settings.onenet.base_url, settings.onenet.platform)
    if warning:
        console.warn(warning)
    return settings, api_key


@contextlib.asynccontextmanager
async def open_session(settings: Settings, api_key: str) -> AsyncIterator[OneNetClient]:
    """A OneNET client over one aiohttp transport with the settings' timeout and pool size."""
    async with AiohttpTransport.open(
        timeout_s=settings.retry.request_timeout_s, limit=settings.limits.concurrency
    ) as transport:
        yield client_of(transport, settings, api_key)


def client_of(transport: Transport, settings: Settings, key: str) -> OneNetClient:
    """The client of the settings' platform: an api-key, or a token signed with the access key
    (``key``) of the newer platform; exits with a clear message when the token cannot be made."""
    onenet = settings.onenet
    token = onenet.token
    if onenet.platform != "iot-api" or token is None:
        return OneNetClient(transport, onenet.base_url, key)
    try:
        source = TokenSource(
            key, token.res, method=token.method, version=token.version, lifetime_s=token.lifetime
        )
    except ValueError as exc:
        fail(f"onenet.token: {exc}")
    return OneNetClient(transport, onenet.base_url, platform="iot-api", token=source)


@contextlib.asynccontextmanager
async def open_lane(settings: Settings, api_key: str) -> AsyncIterator[Lane]:
    """A lane (pace, slow-down, breakers, clock) over a fresh client session."""
    async with open_session(settings, api_key) as client:
        yield Lane.of(client, settings)

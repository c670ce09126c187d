"""What every command that talks to OneNET shares: its options, and its settings from the config
and the command line's overrides (the use cases read the keys, app/keys.py, and make the
clients, app/clients.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from dispatcher.cli.numbers import FiniteFloat
from dispatcher.config import Settings, load_settings
from dispatcher.errors import ConfigError

__all__ = ["lane_options", "load_config"]

F = TypeVar("F", bound=Callable[..., Any])


def lane_options(command: F) -> F:
    """The options every command that talks to OneNET takes."""
    for option in reversed(
        (
            click.option(
                "--config", "config_path", type=click.Path(path_type=Path), help="Config file."
            ),
            click.option("--base-url", help="OneNET API base URL (e.g. the emulator's)."),
            click.option(
                "--rate", type=FiniteFloat(min=0), help="Requests per second at most (0: no limit)."
            ),
            click.option(
                "--concurrency", type=click.IntRange(1, 1024), help="Requests in flight at most."
            ),
        )
    ):
        command = option(command)
    return command


def load_config(
    config_path: Path | None,
    *,
    rate: float | None = None,
    concurrency: int | None = None,
    base_url: str | None = None,
) -> Settings:
    """The settings with the command line's overrides: ConfigError when the file is wrong, a
    usage error when a flag is."""
    settings = load_settings(config_path)
    try:
        return settings.with_overrides(
            rate="keep" if rate is None else rate, concurrency=concurrency, base_url=base_url
        )
    except ConfigError as exc:
        raise click.UsageError(str(exc).removeprefix("command line: ")) from None

"""What every command that talks to OneNET shares: its settings from the config and the command
line's overrides (the keys are read by the use cases: app/keys.py; the clients are made there
too: app/clients.py)."""

from __future__ import annotations

from pathlib import Path

import click

from dispatcher.config import Settings, load_settings
from dispatcher.errors import ConfigError

__all__ = ["load_config"]


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

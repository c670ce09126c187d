"""What the settings tests share: a secret that must never show, and a config file's settings or
its error."""

from __future__ import annotations

from dispatcher.config import (
    LedgerSettings,
    Limits,
    OneNetSettings,
    ReliabilitySettings,
    RetrySettings,
    Settings,
    load_settings,
)
from tests.support.files import WriteFile

SECRET = "SECRET-KEY-123456"
SECTIONS = {
    "onenet": OneNetSettings,
    "limits": Limits,
    "retry": RetrySettings,
    "reliability": ReliabilitySettings,
    "ledger": LedgerSettings,
}


def load_text(write_file: WriteFile, text: str | bytes, name: str = "config.yaml") -> Settings:
    """The settings of a config file holding ``text``."""
    return load_settings(write_file(name, text))

"""Settings: frozen dataclasses, loaded from a YAML config file and checked once at the edge.

Every key is documented in ``config.example.yaml``. The api-key itself never lives in a file: the
config names the environment variable that holds it (``onenet.api_key_env``; on the newer
platform, ``onenet.token.access_key_env``).

``products:`` names OneNET products, each a lane of its own: its keys (those of ``onenet``,
``limits`` and ``retry``, written flat) override the top-level sections' for that product, and
``Settings.for_product`` gives the settings a product's lane runs with.

``notify:`` lists where notifications go (config/notify.py); their URLs and secrets name
environment variables, read when a notification is sent.
"""

from dispatcher.config.keys import api_key_from_env, plain_http_warning
from dispatcher.config.loading import load_settings
from dispatcher.config.notify import LANGUAGES, NOTIFY_EVENTS, TARGET_TYPES, NotifyTarget
from dispatcher.config.settings import (
    PLATFORMS,
    TOKEN_METHODS,
    LedgerSettings,
    Limits,
    OneNetSettings,
    ReliabilitySettings,
    RetrySettings,
    Settings,
    TokenSettings,
)

__all__ = [
    "LANGUAGES",
    "NOTIFY_EVENTS",
    "PLATFORMS",
    "TARGET_TYPES",
    "TOKEN_METHODS",
    "LedgerSettings",
    "Limits",
    "NotifyTarget",
    "OneNetSettings",
    "ReliabilitySettings",
    "RetrySettings",
    "Settings",
    "TokenSettings",
    "api_key_from_env",
    "load_settings",
    "plain_http_warning",
]

"""The api-key from the environment variable the settings name, and the warning for a base URL
that would send it in the clear.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from urllib.parse import urlsplit

from dispatcher.config.settings import Settings, env_name_ok
from dispatcher.errors import ConfigError

__all__ = ["api_key_from_env", "plain_http_warning"]


def api_key_from_env(settings: Settings, environ: Mapping[str, str] | None = None) -> str:
    """The key from the environment variable the config names (the api-key, or on the newer
    platform the token's access key); ConfigError if unset."""
    env = os.environ if environ is None else environ
    token = settings.onenet.token
    if settings.onenet.platform == "iot-api" and token is not None:
        key = env.get(token.access_key_env, "").strip()
        if not key:
            raise ConfigError(
                f"the access key is not set: export {token.access_key_env}=<the access key of"
                f" {token.res}>"
            )
        return key
    name = settings.onenet.api_key_env
    if not name or not env_name_ok(name):
        raise ConfigError(
            f"onenet.api_key_env: {name!r} is not the name of an environment variable"
        )
    key = env.get(name, "").strip()
    if not key:
        raise ConfigError(f"the api-key is not set: export {name}=<your product's master key>")
    if not all("!" <= ch <= "~" for ch in key):
        # It travels in an HTTP header: a control character, a space or a non-ASCII character
        # cannot, and is a copy-and-paste accident.
        raise ConfigError(
            f"the api-key in {name} holds a character an HTTP header cannot carry (a control"
            " character, a space or a non-ASCII character): export it again as it is shown"
            " in OneNET's console"
        )
    return key


def plain_http_warning(base_url: str, platform: str = "onenet") -> str | None:
    """A warning when the key (the api-key, or on the newer platform a signed token) would
    travel over plain http to a host that is not loopback."""
    url = urlsplit(base_url)
    if url.scheme != "http":
        return None
    host = url.hostname or ""
    if host == "localhost":
        return None
    try:
        if ipaddress.ip_address(host).is_loopback:
            return None
    except ValueError:
        pass
    what = "the api-key" if platform == "onenet" else "the signed token"
    return f"{what} will be sent unencrypted over plain http to {host}; use https"

"""``notify:``: where notifications go (DingTalk, WeCom and Feishu robots, a JSON webhook), for
which events, in which language; read from the config file into ``NotifyTarget`` values.

A target's ``url`` and ``secret`` may name environment variables as ``${NAME}``: they are read
when a notification is sent (``NotifyTarget.resolve``), and checked when the config is loaded so
that a missing one is said before any work starts. A ``secret`` is never written in the file.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

from dispatcher.config.values import duration, suggest
from dispatcher.errors import ConfigError

__all__ = [
    "LANGUAGES",
    "NOTIFY_EVENTS",
    "TARGET_TYPES",
    "NotifyTarget",
    "notify_targets",
]

TARGET_TYPES: Final = ("dingtalk", "wecom", "feishu", "webhook")
"""The kinds of target: three chat robots and a generic JSON webhook."""
NOTIFY_EVENTS: Final = (
    "run_finished",
    "run_aborted",
    "canary_verdict",
    "watch_finished",
    "verify_finished",
)
"""The events a target may ask for (all of them by default)."""
LANGUAGES: Final = ("en", "zh")
"""The languages a message is written in."""

_SIGNED: Final = ("dingtalk", "feishu")  # the robots that sign with a secret
_KEYS: Final = ("type", "url", "secret", "events", "language", "timeout", "retries")
_VARIABLE: Final = re.compile(r"\$\{([^}]*)\}")
_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True, slots=True)
class NotifyTarget:
    """One place notifications go, as the config writes it (``${NAME}`` not yet read)."""

    type: str
    url: str
    secret: str = ""  # "${NAME}": the robot's signing secret, from the environment ("" none)
    events: tuple[str, ...] = NOTIFY_EVENTS
    language: str = "en"
    timeout_s: float = 5.0  # per attempt
    retries: int = 2  # attempts beyond the first
    key: str = "notify[0]"  # where it stands in the config, for messages

    def wants(self, event: str) -> bool:
        """Whether this target asked for ``event``."""
        return event in self.events

    def variables(self) -> tuple[str, ...]:
        """The environment variables its URL and secret name."""
        return tuple(_VARIABLE.findall(self.url + self.secret))

    def resolve(self, environ: Mapping[str, str] | None = None) -> tuple[str, str]:
        """The URL and the secret with every ``${NAME}`` read from the environment; ConfigError
        naming the key and the variable when one is not set."""
        env = os.environ if environ is None else environ
        return (
            _expand(self.url, env, f"{self.key}.url"),
            _expand(self.secret, env, f"{self.key}.secret"),
        )

    def to_dict(self) -> dict[str, Any]:
        """What the ledger may record of it: no URL and no secret (either may hold a token)."""
        return {
            "type": self.type,
            "events": list(self.events),
            "language": self.language,
            "timeout_s": self.timeout_s,
            "retries": self.retries,
        }


def _expand(text: str, env: Mapping[str, str], where: str) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        found = env.get(name, "")
        if not found:
            raise ConfigError(f"{where}: the environment variable {name} is not set: export it")
        return found

    return _VARIABLE.sub(value, text)


def notify_targets(
    raw: Any, where: str, environ: Mapping[str, str] | None = None
) -> tuple[NotifyTarget, ...]:
    """``notify:`` read and checked (its variables set in ``environ``); ConfigError naming the
    file, the target and the key."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ConfigError(f"{where}: notify: must be a list of targets (- type: dingtalk ...)")
    targets = []
    for n, item in enumerate(raw):
        key = f"notify[{n}]"
        target = _target(item, f"{where}: {key}", key)
        target.resolve(environ)  # a variable not set is said now, not after the run
        targets.append(target)
    return tuple(targets)


def _target(item: Any, here: str, key: str) -> NotifyTarget:
    if not isinstance(item, Mapping):
        raise ConfigError(f"{here}: must be a mapping (type, url, events, ...)")
    for k in item:
        if str(k) not in _KEYS:
            raise ConfigError(f"{here}.{k}: unknown key{suggest(str(k), dict.fromkeys(_KEYS))}")
    kind = _choice(item.get("type"), TARGET_TYPES, f"{here}.type")
    url = _text(item.get("url"), f"{here}.url")
    _variables(url, f"{here}.url")
    if urlsplit(_VARIABLE.sub("x", url)).scheme not in ("http", "https"):
        raise ConfigError(f"{here}.url: must be an http(s) URL")
    secret = "" if item.get("secret") is None else _text(item["secret"], f"{here}.secret")
    if secret:
        if kind not in _SIGNED:
            raise ConfigError(f"{here}.secret: a {kind} target does not sign: remove secret")
        if _VARIABLE.fullmatch(secret) is None:
            raise ConfigError(
                f'{here}.secret: a secret comes from the environment: write secret: "${{NAME}}"'
                " and export NAME"
            )
        _variables(secret, f"{here}.secret")
    events: tuple[str, ...] = NOTIFY_EVENTS
    if item.get("events") is not None:
        given = item["events"]
        if isinstance(given, str) or not isinstance(given, list) or not given:
            raise ConfigError(f"{here}.events: must be a list, such as [run_finished, run_aborted]")
        events = tuple(
            dict.fromkeys(
                _choice(str(e).replace("-", "_"), NOTIFY_EVENTS, f"{here}.events") for e in given
            )
        )
    language = _choice(item.get("language", "en"), LANGUAGES, f"{here}.language")
    timeout = duration(item.get("timeout", 5.0), f"{here}.timeout")
    if not 0 < timeout <= 60:
        raise ConfigError(f"{here}.timeout: must be within 0..60 seconds (such as 5s)")
    retries = item.get("retries", 2)
    if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= 10:
        raise ConfigError(f"{here}.retries: must be a whole number within 0..10")
    return NotifyTarget(kind, url, secret, events, language, timeout, retries, key)


def _choice(value: Any, choices: tuple[str, ...], where: str) -> str:
    if value is None:
        raise ConfigError(f"{where}: missing (one of {', '.join(choices)})")
    text = str(value)
    if text not in choices:
        raise ConfigError(f"{where}: unknown {text!r}{suggest(text, dict.fromkeys(choices))}")
    return text


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}: must be text, not {value!r}")
    return value.strip()


def _variables(text: str, where: str) -> None:
    for name in _VARIABLE.findall(text):
        if _NAME.fullmatch(name) is None:
            raise ConfigError(f"{where}: ${{{name}}} does not name an environment variable")

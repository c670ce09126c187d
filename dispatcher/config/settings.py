"""The settings as frozen dataclasses, one per section of the config file, with their defaults,
and the checks of a whole set of them (``check``); ``Settings.for_product`` gives the settings a
product's lane runs with.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from dispatcher.config.notify import NotifyTarget
from dispatcher.config.values import rate as rate_value, shown, suggest
from dispatcher.errors import ConfigError

__all__ = [
    "PLATFORMS",
    "TOKEN_METHODS",
    "LedgerSettings",
    "Limits",
    "OneNetSettings",
    "ReliabilitySettings",
    "RetrySettings",
    "Settings",
    "TokenSettings",
    "check",
    "env_name_ok",
]


PLATFORMS = ("onenet", "iot-api")
"""``onenet``: api.heclouds.com, /nbiot paths, an api-key; ``iot-api``: the newer platform,
/nb-iot paths, a signed token."""
TOKEN_METHODS = ("md5", "sha1", "sha256")


@dataclass(frozen=True, slots=True)
class TokenSettings:
    """The newer platform's signed token: whose access key, for which resource, how signed."""

    access_key_env: str = ""
    res: str = ""  # userid/{uid}, products/{pid} or products/{pid}/devices/{name}
    method: str = "sha1"
    version: str = "2022-05-01"
    lifetime: float = 3600.0  # seconds a token is good for (written 1h, 30m, 3600)


@dataclass(frozen=True, slots=True)
class OneNetSettings:
    """Where OneNET is, which platform, and which environment variable holds the key."""

    base_url: str = "https://api.heclouds.com"
    api_key_env: str = "ONENET_API_KEY"
    platform: str = "onenet"
    token: TokenSettings | None = None  # the newer platform's (platform: iot-api)


@dataclass(frozen=True, slots=True)
class Limits:
    """Pace and parallelism. ``rate_per_second`` None means no limit (benchmarks, emulator)."""

    rate_per_second: float | None = 20.0
    concurrency: int = 16
    adaptive: bool = True  # the pace finds and holds the rate OneNET admits (run/finder.py)


@dataclass(frozen=True, slots=True)
class RetrySettings:
    """HTTP attempts per command (not OneNET's device-side ``retry``) and their backoff."""

    max_attempts: int = 6
    initial_backoff_s: float = 0.5
    max_backoff_s: float = 30.0
    request_timeout_s: float = 30.0


@dataclass(frozen=True, slots=True)
class ReliabilitySettings:
    """Exactly-once and stopping: reconciliation, the wrong-key breaker, the stop grace."""

    reconcile_lookback_s: float = 300.0  # history search starts this long before the first attempt
    settle_s: float = 5.0  # wait this long after a lost answer before asking the history
    reconcile_rounds: int = 3  # reconcile-and-resend rounds at the end of a run
    breaker_threshold: int = 10  # errno 1 answers (or failed connections) that stop an early run
    stop_grace_s: float = 30.0  # after the first Ctrl-C, how long in-flight requests may take
    delivery_poll_s: float = 15.0  # how often wait: delivered (canary, steps) reads deliveries


@dataclass(frozen=True, slots=True)
class LedgerSettings:
    """How the results ledger is written."""

    synchronous: str = (
        "full"  # SQLite PRAGMA synchronous: full survives power loss, normal is faster
    )
    batch_size: int = 500  # commands registered per transaction
    # A PostgreSQL ledger (postgresql://user@host/dbname) every job's run writes by default, each
    # job its own in it; None: a SQLite file beside each job. The password comes from PGPASSWORD.
    url: str | None = None


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything a run needs besides the job file and the api-key."""

    onenet: OneNetSettings = field(default_factory=OneNetSettings)
    limits: Limits = field(default_factory=Limits)
    retry: RetrySettings = field(default_factory=RetrySettings)
    reliability: ReliabilitySettings = field(default_factory=ReliabilitySettings)
    ledger: LedgerSettings = field(default_factory=LedgerSettings)
    # Each product's own keys, by section: {name: {"onenet": {...}, "limits": {...}, ...}}.
    products: Mapping[str, Mapping[str, Mapping[str, Any]]] = field(default_factory=dict)
    notify: tuple[NotifyTarget, ...] = ()  # where notifications go (config/notify.py)

    def for_product(self, name: str | None) -> Settings:
        """The settings of one product's lane (None or "": the top-level sections'), no
        products of its own; ConfigError for a product the config does not name."""
        if not name:
            return dataclasses.replace(self, products={})
        own = self.products.get(name)
        if own is None:
            raise ConfigError(f"no product {name!r} in the config{suggest(name, self.products)}")
        changed = {
            section: dataclasses.replace(getattr(self, section), **values)
            for section, values in own.items()
        }
        return dataclasses.replace(self, products={}, **changed)

    def to_dict(self) -> dict[str, Any]:
        """The settings as plain data (for the ledger's runs table); holds no secret (nor a
        notification's URL, which may hold a token)."""
        data = dataclasses.asdict(self)
        data["notify"] = [target.to_dict() for target in self.notify]
        return data

    def with_overrides(
        self,
        *,
        rate: float | str | None = "keep",
        concurrency: int | None = None,
        base_url: str | None = None,
    ) -> Settings:
        """A copy with CLI flags applied (``rate`` 0 means unlimited); checked like the file."""
        limits = self.limits
        if rate != "keep":
            limits = dataclasses.replace(limits, rate_per_second=rate_value(rate, "--rate"))
        if concurrency is not None:
            limits = dataclasses.replace(limits, concurrency=concurrency)
        onenet = self.onenet
        if base_url is not None:
            onenet = dataclasses.replace(onenet, base_url=base_url)
        new = dataclasses.replace(self, limits=limits, onenet=onenet)
        check(new, "command line")
        if base_url is not None or rate != "keep" or concurrency is not None:
            # The command line is said for every product: its flags win over their keys too.
            products: dict[str, dict[str, dict[str, Any]]] = {}
            for name, given in new.products.items():
                own = {k: dict(v) for k, v in given.items()}
                if base_url is not None:
                    own.setdefault("onenet", {})["base_url"] = base_url
                if rate != "keep":
                    own.setdefault("limits", {})["rate_per_second"] = limits.rate_per_second
                if concurrency is not None:
                    own.setdefault("limits", {})["concurrency"] = concurrency
                products[name] = own
            new = dataclasses.replace(new, products=products)
        return new


def check(s: Settings, where: str) -> None:
    """ConfigError naming every problem of ``s`` (read from ``where``)."""
    problems: list[str] = []
    url_problem = _url_problem(s.onenet.base_url)
    if url_problem is not None:
        problems.append(
            f"onenet.base_url: {s.onenet.base_url!r} is not an http(s) URL{url_problem}"
        )
    o = s.onenet
    name = o.api_key_env
    if o.platform not in PLATFORMS:
        problems.append(f"onenet.platform: {o.platform!r} must be onenet or iot-api")
    elif o.platform == "iot-api":
        t = o.token
        if t is None:
            problems.append("onenet.token: platform iot-api signs with a token: give token:")
        else:
            if not t.access_key_env or not env_name_ok(t.access_key_env):
                problems.append(
                    "onenet.token.access_key_env: name the environment variable holding the"
                    " access key"
                )
            if not t.res:
                problems.append(
                    "onenet.token.res: name what the token is for: products/{pid},"
                    " userid/{uid} or products/{pid}/devices/{name}"
                )
            if t.method not in TOKEN_METHODS:
                problems.append(f"onenet.token.method: {t.method!r} must be md5, sha1 or sha256")
            if not 60 <= t.lifetime <= 366 * 86400:
                problems.append("onenet.token.lifetime: must be from 60 s to a year")
    elif not name:
        problems.append("onenet.api_key_env: name the environment variable holding the api-key")
    elif not env_name_ok(name):
        problems.append(f"onenet.api_key_env: {name!r} is not the name of an environment variable")
    rate = s.limits.rate_per_second
    if rate is not None and rate < 0:
        problems.append(f"limits.rate_per_second: {rate} must be positive (0 means no limit)")
    if not 1 <= s.limits.concurrency <= 1024:
        problems.append(f"limits.concurrency: {shown(s.limits.concurrency)} must be within 1..1024")
    r = s.retry
    if not 1 <= r.max_attempts <= 100:
        problems.append(f"retry.max_attempts: {shown(r.max_attempts)} must be within 1..100")
    if r.initial_backoff_s < 0 or r.max_backoff_s < r.initial_backoff_s:
        problems.append("retry: need 0 <= initial_backoff_s <= max_backoff_s")
    if r.request_timeout_s <= 0:
        problems.append("retry.request_timeout_s: must be positive")
    rel = s.reliability
    if rel.reconcile_lookback_s < 0 or rel.settle_s < 0 or rel.stop_grace_s < 0:
        problems.append("reliability: durations must not be negative")
    if not 0.1 <= rel.delivery_poll_s <= 86400:
        problems.append("reliability.delivery_poll_s: must be within 0.1..86400 seconds")
    if rel.breaker_threshold < 1 or rel.reconcile_rounds < 0:
        problems.append("reliability: breaker_threshold >= 1 and reconcile_rounds >= 0")
    if s.ledger.synchronous.lower() not in ("full", "normal"):
        problems.append(f"ledger.synchronous: {s.ledger.synchronous!r} must be full or normal")
    if s.ledger.batch_size < 1:
        problems.append("ledger.batch_size: must be at least 1")
    problems += _ledger_url_problems(s.ledger.url)
    if problems:
        raise ConfigError(f"{where}: " + "; ".join(problems))


def _url_problem(url: str) -> str | None:
    """None for an http(s) URL with a host, else '' or ': why' (urlsplit's reason)."""
    try:
        url.encode("utf-8")
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- read only to check it: out of range or not a number raises
    except ValueError as exc:  # UnicodeEncodeError too: a lone surrogate
        reason = str(exc)
        return f": {reason[:1].lower()}{reason[1:]}"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return ""
    return None


def _ledger_url_problems(url: str | None) -> list[str]:
    """What is wrong with ``ledger.url``: not a postgresql:// URL with a database, or a password
    written into it (a config file is shared and committed: the password goes in PGPASSWORD)."""
    if url is None:
        return []
    if not isinstance(url, str) or not url.startswith(("postgresql://", "postgres://")):
        return [f"ledger.url: {url!r} is not a postgresql://user@host/dbname URL"]
    try:
        parts = urlsplit(url.partition("#")[0])
        password = parts.password
    except ValueError as exc:
        return [f"ledger.url: {exc}"]
    found = []
    # A password holding an unencoded '/', '?' or '#' ends the authority early: "user:pa" then
    # reads as no password (and the rest of it as the path): refused as a password all the same.
    rest = url.split("://", 1)[-1]
    authority = rest.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    split_early = "@" not in authority and ":" in authority and "@" in rest
    if split_early and not authority.rsplit(":", 1)[1].isdigit():
        return ["ledger.url: holds a password (percent-encode it, or better, set PGPASSWORD)"]
    if password is not None or "password=" in parts.query:
        found.append(
            "ledger.url: holds a password: leave it out of the config file and set PGPASSWORD"
            " (or use ~/.pgpass)"
        )
    if not parts.path.strip("/"):
        found.append("ledger.url: name the database after the host (postgresql://user@host/dbname)")
    if "#" in url:
        found.append("ledger.url: names no job (each job's run uses its own: drop the #…)")
    return found


def env_name_ok(name: str) -> bool:
    """True when ``name`` can name an environment variable (no '=', no NUL, encodable)."""
    try:
        os.fsencode(name)
    except UnicodeEncodeError:
        return False
    return "=" not in name and "\x00" not in name

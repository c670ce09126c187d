"""Settings: frozen dataclasses, loaded from a YAML config file and checked once at the edge.

Every key is documented in ``config.example.yaml``. The api-key itself never lives in a file: the
config names the environment variable that holds it (``onenet.api_key_env``; on the newer
platform, ``onenet.token.access_key_env``).

``products:`` names OneNET products, each a lane of its own: its keys (those of ``onenet``,
``limits`` and ``retry``, written flat) override the top-level sections' for that product, and
``Settings.for_product`` gives the settings a product's lane runs with.
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

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
    "api_key_from_env",
    "load_settings",
    "plain_http_warning",
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
    delivery_poll_s: float = 15.0  # a canary with wait: delivered reads its delivery this often


@dataclass(frozen=True, slots=True)
class LedgerSettings:
    """How the results ledger is written."""

    synchronous: str = (
        "full"  # SQLite PRAGMA synchronous: full survives power loss, normal is faster
    )
    batch_size: int = 500  # commands registered per transaction


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

    def for_product(self, name: str | None) -> Settings:
        """The settings of one product's lane (None or "": the top-level sections'), no
        products of its own; ConfigError for a product the config does not name."""
        if not name:
            return dataclasses.replace(self, products={})
        own = self.products.get(name)
        if own is None:
            raise ConfigError(f"no product {name!r} in the config{_suggest(name, self.products)}")
        changed = {
            section: dataclasses.replace(getattr(self, section), **values)
            for section, values in own.items()
        }
        return dataclasses.replace(self, products={}, **changed)

    def to_dict(self) -> dict[str, Any]:
        """The settings as plain data (for the ledger's runs table); holds no secret."""
        return dataclasses.asdict(self)

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
            limits = dataclasses.replace(limits, rate_per_second=_rate(rate, "--rate"))
        if concurrency is not None:
            limits = dataclasses.replace(limits, concurrency=concurrency)
        onenet = self.onenet
        if base_url is not None:
            onenet = dataclasses.replace(onenet, base_url=base_url)
        new = dataclasses.replace(self, limits=limits, onenet=onenet)
        _check(new, "command line")
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


_SECTIONS: dict[str, type[Any]] = {
    "onenet": OneNetSettings,
    "limits": Limits,
    "retry": RetrySettings,
    "reliability": ReliabilitySettings,
    "ledger": LedgerSettings,
}


def load_settings(path: str | Path | None) -> Settings:
    """Read and check a config file; None gives the defaults. Raises ConfigError."""
    if path is None:
        return Settings()
    where = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read the config file ({exc.strerror})") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{where}: not a UTF-8 text file") from exc
    except ValueError as exc:  # a NUL in the path
        raise ConfigError(f"{where}: cannot read the config file ({exc})") from exc
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(
            f"{where}{line}: not valid YAML ({getattr(exc, 'problem', exc)})"
        ) from exc
    except ValueError as exc:  # a value YAML types but Python refuses: 2020-13-45, !!int abc
        raise ConfigError(f"{where}: not valid YAML ({exc})") from exc
    except RecursionError as exc:
        raise ConfigError(f"{where}: not valid YAML (nested too deeply)") from exc
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: the config must be a mapping of sections")
    sections: dict[str, Any] = {}
    products: Any = None
    for name, value in raw.items():
        if name == "products":
            products = value
            continue
        cls = _SECTIONS.get(str(name))
        if cls is None:
            raise ConfigError(f"{where}: unknown section {name!r}{_suggest(str(name), _SECTIONS)}")
        if value is None:
            value = {}
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: {name}: must be a mapping of keys")
        sections[str(name)] = _section(cls, value, f"{where}: {name}")
    settings = Settings(**sections)
    _check(settings, where)
    if products is not None:
        settings = dataclasses.replace(settings, products=_products(products, settings, where))
    return settings


# The keys a product may give, and the section each belongs to.
_PRODUCT_KEYS: dict[str, str] = {
    **{f.name: "onenet" for f in dataclasses.fields(OneNetSettings)},
    **{f.name: "limits" for f in dataclasses.fields(Limits)},
    **{f.name: "retry" for f in dataclasses.fields(RetrySettings)},
}


def _products(raw: Any, top: Settings, where: str) -> dict[str, dict[str, dict[str, Any]]]:
    """``products:``: each product's keys by section, checked as the lane will run with them."""
    if not isinstance(raw, Mapping) or not raw:
        raise ConfigError(f"{where}: products: must be a mapping of product name to its keys")
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for key, values in raw.items():
        name = str(key)
        here = f"{where}: products.{name}"
        if not name or not name.replace("-", "").replace("_", "").isalnum() or not name.isascii():
            raise ConfigError(f"{here}: a product's name is letters, digits, - and _")
        if values is None:
            values = {}
        if not isinstance(values, Mapping):
            raise ConfigError(f"{here}: must be a mapping of keys")
        own: dict[str, dict[str, Any]] = {}
        for k, value in values.items():
            section = _PRODUCT_KEYS.get(str(k))
            if section is None:
                raise ConfigError(f"{here}.{k}: unknown key{_suggest(str(k), _PRODUCT_KEYS)}")
            cls = _SECTIONS[section]
            own.setdefault(section, {})[str(k)] = _coerce_field(cls, str(k), value, f"{here}.{k}")
        out[name] = own
        _check(dataclasses.replace(top, products=out).for_product(name), here)
    return out


def _section(cls: type[Any], values: Mapping[Any, Any], where: str) -> Any:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        name = str(key)
        if name not in fields:
            raise ConfigError(f"{where}.{name}: unknown key{_suggest(name, fields)}")
        kwargs[name] = _coerce_field(cls, name, value, f"{where}.{name}")
    return cls(**kwargs)


def _coerce_field(cls: type[Any], name: str, value: Any, where: str) -> Any:
    """One key's value, as its field wants it."""
    if cls is OneNetSettings and name == "token":
        if value is None:
            return None
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: must be a mapping (access_key_env, res, method, ...)")
        token: dict[str, Any] = {}
        fields = {f.name for f in dataclasses.fields(TokenSettings)}
        for k, v in value.items():
            if str(k) not in fields:
                raise ConfigError(
                    f"{where}.{k}: unknown key{_suggest(str(k), dict.fromkeys(fields))}"
                )
            if k == "lifetime":
                token["lifetime"] = _duration(v, f"{where}.lifetime")
            else:
                token[str(k)] = _coerce(v, getattr(TokenSettings(), str(k)), f"{where}.{k}")
        return TokenSettings(**token)
    return _coerce(value, getattr(cls(), name), where)


def _duration(value: Any, where: str) -> float:
    """Seconds, from a number or text such as 90s, 30m, 1h, 1d."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _number(value, where)
    text = str(value).strip().lower()
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    number, unit = (text[:-1], units[text[-1]]) if text[-1:] in units else (text, 1)
    try:
        seconds = float(number) * unit
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds):  # float() reads nan, inf and 1e999 too
        raise ConfigError(f"{where}: must be a duration such as 1h, 30m or 3600, not {value!r}")
    return seconds


def _coerce(value: Any, default: Any, where: str) -> Any:
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: must be true or false, not {value!r}")
        return value
    if isinstance(default, int) and not isinstance(default, bool):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: must be a whole number, not {value!r}")
        return value
    if isinstance(default, float) or default is None:
        return _rate(value, where) if where.endswith("rate_per_second") else _number(value, where)
    if not isinstance(value, str):
        raise ConfigError(f"{where}: must be text, not {value!r}")
    return value


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{where}: must be a number, not {value!r}")
    try:
        number = float(value)
    except OverflowError:
        raise ConfigError(f"{where}: must be a number, not one this large") from None
    if not math.isfinite(number):
        raise ConfigError(f"{where}: must be a number, not {value!r}")
    return number


def _rate(value: Any, where: str) -> float | None:
    """A rate: a positive number, or 0 / null / 'unlimited' for no limit."""
    if value is None or value == "unlimited":
        return None
    rate = _number(value, where)
    return None if rate == 0 else rate


def _check(s: Settings, where: str) -> None:
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
            if not t.access_key_env or not _env_name_ok(t.access_key_env):
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
    elif not _env_name_ok(name):
        problems.append(f"onenet.api_key_env: {name!r} is not the name of an environment variable")
    rate = s.limits.rate_per_second
    if rate is not None and rate < 0:
        problems.append(f"limits.rate_per_second: {rate} must be positive (0 means no limit)")
    if not 1 <= s.limits.concurrency <= 1024:
        problems.append(
            f"limits.concurrency: {_shown(s.limits.concurrency)} must be within 1..1024"
        )
    r = s.retry
    if not 1 <= r.max_attempts <= 100:
        problems.append(f"retry.max_attempts: {_shown(r.max_attempts)} must be within 1..100")
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


def _env_name_ok(name: str) -> bool:
    """True when ``name`` can name an environment variable (no '=', no NUL, encodable)."""
    try:
        os.fsencode(name)
    except UnicodeEncodeError:
        return False
    return "=" not in name and "\x00" not in name


def _shown(number: int) -> str:
    """A whole number for a message; Python refuses to write one of thousands of digits."""
    return str(number) if number.bit_length() <= 64 else "a number this large"


def _suggest(name: str, choices: Mapping[str, object]) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(sorted(choices))})"


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
    if not name or not _env_name_ok(name):
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

"""Reading a YAML config file into ``Settings``: its sections and ``products:``, each key coerced
and the whole checked, with errors that name the file and the key.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from dispatcher.config.notify import notify_targets
from dispatcher.config.settings import (
    LedgerSettings,
    Limits,
    OneNetSettings,
    ReliabilitySettings,
    RetrySettings,
    Settings,
    TokenSettings,
    check,
)
from dispatcher.config.values import coerce, duration, nearest, suggest
from dispatcher.errors import ConfigError

__all__ = ["load_settings"]


_SECTIONS: dict[str, type[Any]] = {
    "onenet": OneNetSettings,
    "limits": Limits,
    "retry": RetrySettings,
    "reliability": ReliabilitySettings,
    "ledger": LedgerSettings,
}
# Every section a config may have: those above, and the two that are lists or maps of their own.
_ALL_SECTIONS: dict[str, object] = {**_SECTIONS, "products": None, "notify": None}


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
    notify: Any = None
    for name, value in raw.items():
        if name == "products":
            products = value
            continue
        if name == "notify":
            notify = value
            continue
        cls = _SECTIONS.get(str(name))
        if cls is None:
            raise ConfigError(f"{where}: {_unknown_section(name)}")
        if value is None:
            value = {}
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: {name}: must be a mapping of keys")
        sections[str(name)] = _section(cls, value, f"{where}: {name}")
    settings = Settings(**sections)
    check(settings, where)
    if products is not None:
        settings = dataclasses.replace(settings, products=_products(products, settings, where))
    if notify is not None:
        settings = dataclasses.replace(settings, notify=notify_targets(notify, where))
    return settings


def _unknown_section(name: object) -> str:
    """The message for a section no config has: the closest one, and every one there is."""
    text = str(name)
    close = nearest(text, _ALL_SECTIONS)
    mean = f"did you mean {close!r}? " if close else ""
    return f"unknown section {text!r} ({mean}sections: {', '.join(sorted(_ALL_SECTIONS))})"


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
                raise ConfigError(f"{here}.{k}: unknown key{suggest(str(k), _PRODUCT_KEYS)}")
            cls = _SECTIONS[section]
            own.setdefault(section, {})[str(k)] = _coerce_field(cls, str(k), value, f"{here}.{k}")
        out[name] = own
        check(dataclasses.replace(top, products=out).for_product(name), here)
    return out


def _section(cls: type[Any], values: Mapping[Any, Any], where: str) -> Any:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        name = str(key)
        if name not in fields:
            raise ConfigError(f"{where}.{name}: unknown key{suggest(name, fields)}")
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
                    f"{where}.{k}: unknown key{suggest(str(k), dict.fromkeys(fields))}"
                )
            if k == "lifetime":
                token["lifetime"] = duration(v, f"{where}.lifetime")
            else:
                token[str(k)] = coerce(v, getattr(TokenSettings(), str(k)), f"{where}.{k}")
        return TokenSettings(**token)
    if cls is LedgerSettings and name == "url":  # text, or empty (None): no shared ledger
        return None if value is None else coerce(value, "", where)
    return coerce(value, getattr(cls(), name), where)

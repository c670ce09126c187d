"""Settings: flags over the file, the api-key from the environment (never shown), and plain http."""

from __future__ import annotations

import json
from typing import Any

import pytest

from dispatcher.config import (
    Limits,
    OneNetSettings,
    Settings,
    api_key_from_env,
    plain_http_warning,
)
from dispatcher.errors import ConfigError
from tests.support.configs import (
    SECRET,
    SECTIONS,
)


def test_overrides_apply_flags_and_leave_the_original_alone() -> None:
    base = Settings()
    new = base.with_overrides(rate=50, concurrency=4, base_url="http://127.0.0.1:9000")
    assert new.limits == Limits(rate_per_second=50.0, concurrency=4, adaptive=True)
    assert new.onenet == OneNetSettings("http://127.0.0.1:9000", "ONENET_API_KEY")
    assert (new.retry, new.reliability, new.ledger) == (
        base.retry,
        base.reliability,
        base.ledger,
    )
    assert base == Settings()


def test_overrides_without_flags_change_nothing() -> None:
    base = Settings(limits=Limits(rate_per_second=7.0))
    assert base.with_overrides() == base


@pytest.mark.parametrize("rate", [0, 0.0, None, "unlimited"])
def test_rate_override_of_zero_or_none_means_no_limit(rate: float | str | None) -> None:
    assert Settings().with_overrides(rate=rate).limits.rate_per_second is None


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"rate": -5}, "limits.rate_per_second: -5.0 must be positive"),
        ({"rate": "fast"}, "--rate: must be a number"),
        ({"rate": float("nan")}, "--rate: must be a number, not nan"),
        ({"concurrency": 0}, "limits.concurrency: 0 must be within 1..1024"),
        ({"concurrency": 5000}, "limits.concurrency: 5000 must be within 1..1024"),
        ({"base_url": "ftp://example.com"}, "onenet.base_url: 'ftp://example.com'"),
        ({"base_url": "not a url"}, "is not an http(s) URL"),
        (
            {"base_url": "http://h:99999"},
            "onenet.base_url: 'http://h:99999' is not an http(s) URL: port out of range 0-65535",
        ),
        ({"base_url": "http://[::1"}, "'http://[::1' is not an http(s) URL: invalid IPv6 URL"),
        ({"base_url": "http://h:abc/"}, "'http://h:abc/' is not an http(s) URL: port could not"),
        ({"base_url": "http://[zz]/"}, "'http://[zz]/' is not an http(s) URL: 'zz' does not"),
        ({"rate": 10**400}, "--rate: must be a number"),
    ],
)
def test_bad_override_is_checked_like_the_file(kwargs: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings().with_overrides(**kwargs)
    assert expected in str(caught.value)


def test_api_key_is_read_from_the_named_variable() -> None:
    settings = Settings(onenet=OneNetSettings(api_key_env="MY_PRODUCT_KEY"))
    environ = {"ONENET_API_KEY": "other", "MY_PRODUCT_KEY": f"  {SECRET}\n"}
    assert api_key_from_env(settings, environ) == SECRET


def test_api_key_defaults_to_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ONENET_API_KEY", SECRET)
    assert api_key_from_env(Settings()) == SECRET


@pytest.mark.parametrize("environ", [{}, {"ONENET_API_KEY": ""}, {"ONENET_API_KEY": "  \t"}])
def test_missing_api_key_is_an_error_naming_the_variable(environ: dict[str, str]) -> None:
    with pytest.raises(ConfigError) as caught:
        api_key_from_env(Settings(), environ)
    assert "ONENET_API_KEY" in str(caught.value)
    assert str(caught.value).startswith("the api-key is not set: export ONENET_API_KEY=")


def test_missing_api_key_error_never_shows_a_key_value() -> None:
    settings = Settings(onenet=OneNetSettings(api_key_env="MY_PRODUCT_KEY"))
    environ = {"ONENET_API_KEY": SECRET, "my_product_key": SECRET, "OTHER": SECRET}
    with pytest.raises(ConfigError) as caught:
        api_key_from_env(settings, environ)
    assert "MY_PRODUCT_KEY" in str(caught.value)
    assert SECRET not in str(caught.value)
    assert SECRET not in repr(caught.value)


def test_settings_as_data_hold_no_api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ONENET_API_KEY", SECRET)
    settings = Settings()
    assert api_key_from_env(settings) == SECRET
    data = settings.to_dict()
    text = json.dumps(data)
    assert SECRET not in text
    assert set(data) == {*SECTIONS, "products", "notify"}
    assert data["onenet"] == {
        "base_url": "https://api.heclouds.com",
        "api_key_env": "ONENET_API_KEY",
        "platform": "onenet",
        "token": None,
    }
    assert "api_key" not in data["onenet"]


def test_settings_as_data_round_trip_through_json() -> None:
    settings = Settings().with_overrides(rate=0)
    data = json.loads(json.dumps(settings.to_dict()))
    assert data["limits"]["rate_per_second"] is None
    rebuilt = Settings(
        **{name: SECTIONS[name](**values) for name, values in data.items() if name in SECTIONS},
        products=data["products"],
    )
    assert rebuilt == settings


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080",
        "http://127.10.20.30/",
        "http://[::1]:8080",
        "http://localhost:8080",
        "http://LOCALHOST",
        "https://api.heclouds.com",
        "https://203.0.113.7:8443",
        "https://[2001:db8::1]/",
    ],
)
def test_no_plain_http_warning_for_loopback_or_https(url: str) -> None:
    assert plain_http_warning(url) is None


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("http://api.heclouds.com", "api.heclouds.com"),
        ("http://example.invalid:8080/", "example.invalid"),
        ("http://203.0.113.7", "203.0.113.7"),
        ("http://[2001:db8::1]:80", "2001:db8::1"),
        ("http://0.0.0.0:8080", "0.0.0.0"),
        ("http://localhost.example.com", "localhost.example.com"),
    ],
)
def test_plain_http_to_another_host_is_a_warning_naming_it(url: str, host: str) -> None:
    warning = plain_http_warning(url)
    assert warning is not None
    assert host in warning
    assert "https" in warning


@pytest.mark.parametrize("key", ["abc\ndef", "abc def", "ab\x00c", "ключ-123", "abc\u200bdef"])
def test_an_api_key_an_http_header_cannot_carry_is_a_config_error(key: str) -> None:
    with pytest.raises(ConfigError, match="an HTTP header cannot carry") as caught:
        api_key_from_env(Settings(), {"ONENET_API_KEY": key})
    assert key not in str(caught.value)  # never echoed

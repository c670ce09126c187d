"""Settings: defaults, the documented example, every check of the file, flags and the api-key."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from dispatcher.config import (
    LedgerSettings,
    Limits,
    OneNetSettings,
    ReliabilitySettings,
    RetrySettings,
    Settings,
    api_key_from_env,
    load_settings,
    plain_http_warning,
)
from dispatcher.errors import ConfigError, DispatcherError
from tests.support.files import WriteFile

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config.example.yaml"
SECRET = "SECRET-KEY-123456"
SECTIONS = {
    "onenet": OneNetSettings,
    "limits": Limits,
    "retry": RetrySettings,
    "reliability": ReliabilitySettings,
    "ledger": LedgerSettings,
}


def load_text(write_file: WriteFile, text: str | bytes, name: str = "config.yaml") -> Settings:
    return load_settings(write_file(name, text))


def config_error(write_file: WriteFile, text: str | bytes, name: str = "config.yaml") -> str:
    with pytest.raises(ConfigError) as caught:
        load_text(write_file, text, name)
    return str(caught.value)


# --- defaults and the documented example -------------------------------------------------------


def test_defaults_are_the_documented_values() -> None:
    s = Settings()
    assert s.onenet == OneNetSettings("https://api.heclouds.com", "ONENET_API_KEY")
    assert s.limits == Limits(rate_per_second=20.0, concurrency=16, adaptive=True)
    assert s.retry == RetrySettings(
        max_attempts=6, initial_backoff_s=0.5, max_backoff_s=30.0, request_timeout_s=30.0
    )
    assert s.reliability == ReliabilitySettings(
        reconcile_lookback_s=300.0,
        settle_s=5.0,
        reconcile_rounds=3,
        breaker_threshold=10,
        stop_grace_s=30.0,
    )
    assert s.ledger == LedgerSettings(synchronous="full", batch_size=500)


def test_no_config_file_gives_the_defaults() -> None:
    assert load_settings(None) == Settings()


def test_example_config_loads_and_equals_the_defaults() -> None:
    assert load_settings(EXAMPLE) == Settings()


def test_example_config_documents_every_section_and_key() -> None:
    raw = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    documented = {(section, key) for section, keys in raw.items() for key in keys}
    fields = {
        (f.name, g.name)
        for f in dataclasses.fields(Settings)
        if f.name in SECTIONS
        for g in dataclasses.fields(SECTIONS[f.name])
    }
    assert set(raw) == set(SECTIONS)
    assert documented == fields


def test_the_example_configs_products_load_as_written(tmp_path: Path) -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    start = text.index("# products:")
    block = "\n".join(line.removeprefix("# ") for line in text[start:].splitlines())
    path = tmp_path / "c.yaml"
    path.write_text(text[:start] + block + "\n", encoding="utf-8")
    settings = load_settings(path)
    assert set(settings.products) == {"meters", "lights", "studio"}
    lights = settings.for_product("lights")
    assert (lights.limits.rate_per_second, lights.limits.concurrency) == (100, 8)
    assert lights.onenet.api_key_env == "LIGHTS_KEY"
    assert lights.retry == settings.retry  # not given: the top-level section's
    studio = settings.for_product("studio").onenet
    assert (studio.platform, studio.base_url) == ("iot-api", "https://iot-api.heclouds.com")
    assert studio.token is not None and studio.token.lifetime == 3600
    assert settings.for_product(None).onenet == settings.onenet


def test_example_config_explains_every_key_in_a_comment() -> None:
    lines = EXAMPLE.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        if line.startswith("  ") and not line.lstrip().startswith("#"):
            above = i - 1
            while lines[above].startswith("  ") and not lines[above].lstrip().startswith("#"):
                above -= 1  # keys documented together share one comment
            assert lines[above].lstrip().startswith("#"), f"line {i + 1} is not explained: {line}"


def test_settings_are_frozen() -> None:
    s = Settings()
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.limits.concurrency = 3  # type: ignore[misc]


# --- reading the file ---------------------------------------------------------------------------


def test_keys_left_out_keep_their_defaults(write_file: WriteFile) -> None:
    s = load_text(write_file, "limits:\n  concurrency: 4\nretry:\n  max_backoff_s: 10\n")
    assert s.limits == Limits(rate_per_second=20.0, concurrency=4, adaptive=True)
    assert s.retry == dataclasses.replace(RetrySettings(), max_backoff_s=10.0)
    assert (s.onenet, s.reliability, s.ledger) == (
        OneNetSettings(),
        ReliabilitySettings(),
        LedgerSettings(),
    )


def test_every_key_is_read(write_file: WriteFile) -> None:
    s = load_text(
        write_file,
        "onenet:\n"
        "  base_url: http://127.0.0.1:8080\n"
        "  api_key_env: MY_KEY\n"
        "limits:\n"
        "  rate_per_second: 2.5\n"
        "  concurrency: 3\n"
        "  adaptive: false\n"
        "retry:\n"
        "  max_attempts: 2\n"
        "  initial_backoff_s: 0.1\n"
        "  max_backoff_s: 1\n"
        "  request_timeout_s: 7\n"
        "reliability:\n"
        "  reconcile_lookback_s: 60\n"
        "  settle_s: 0\n"
        "  reconcile_rounds: 0\n"
        "  breaker_threshold: 1\n"
        "  stop_grace_s: 2.5\n"
        "ledger:\n"
        "  synchronous: normal\n"
        "  batch_size: 1\n",
    )
    assert s == Settings(
        onenet=OneNetSettings("http://127.0.0.1:8080", "MY_KEY"),
        limits=Limits(2.5, 3, False),
        retry=RetrySettings(2, 0.1, 1.0, 7.0),
        reliability=ReliabilitySettings(60.0, 0.0, 0, 1, 2.5),
        ledger=LedgerSettings("normal", 1),
    )


def test_whole_numbers_for_durations_become_floats(write_file: WriteFile) -> None:
    s = load_text(write_file, "retry:\n  max_backoff_s: 30\n  request_timeout_s: 5\n")
    assert isinstance(s.retry.max_backoff_s, float)
    assert isinstance(s.retry.request_timeout_s, float)


@pytest.mark.parametrize("text", ["", "# nothing but a comment\n", "onenet:\nlimits: null\n"])
def test_empty_file_or_empty_sections_give_the_defaults(write_file: WriteFile, text: str) -> None:
    assert load_text(write_file, text) == Settings()


def test_utf8_bom_and_crlf_are_read(write_file: WriteFile) -> None:
    s = load_text(write_file, "\ufefflimits:\r\n  concurrency: 5\r\n")
    assert s.limits.concurrency == 5


@pytest.mark.parametrize("value", ["0", "0.0", "null", "~", "unlimited"])
def test_rate_zero_null_or_unlimited_means_no_limit(write_file: WriteFile, value: str) -> None:
    s = load_text(write_file, f"limits:\n  rate_per_second: {value}\n")
    assert s.limits.rate_per_second is None


def test_fractional_rate_is_kept(write_file: WriteFile) -> None:
    assert load_text(write_file, "limits:\n  rate_per_second: 0.5\n").limits.rate_per_second == 0.5


# --- bad types -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("limits:\n  concurrency: '16'\n", "limits.concurrency: must be a whole number, not '16'"),
        ("limits:\n  concurrency: 1.5\n", "limits.concurrency: must be a whole number, not 1.5"),
        ("limits:\n  concurrency: true\n", "limits.concurrency: must be a whole number, not True"),
        ("limits:\n  adaptive: 'yes'\n", "limits.adaptive: must be true or false, not 'yes'"),
        ("limits:\n  adaptive: 1\n", "limits.adaptive: must be true or false, not 1"),
        ("limits:\n  rate_per_second: fast\n", "limits.rate_per_second: must be a number"),
        ("limits:\n  rate_per_second: '5'\n", "limits.rate_per_second: must be a number"),
        ("limits:\n  rate_per_second: true\n", "limits.rate_per_second: must be a number"),
        ("retry:\n  max_attempts: 3.0\n", "retry.max_attempts: must be a whole number"),
        ("retry:\n  initial_backoff_s: soon\n", "retry.initial_backoff_s: must be a number"),
        ("retry:\n  request_timeout_s: [1]\n", "retry.request_timeout_s: must be a number"),
        ("reliability:\n  settle_s: false\n", "reliability.settle_s: must be a number"),
        ("reliability:\n  breaker_threshold: ten\n", "reliability.breaker_threshold: must be a"),
        ("onenet:\n  base_url: 123\n", "onenet.base_url: must be text, not 123"),
        ("onenet:\n  api_key_env: [A]\n", "onenet.api_key_env: must be text"),
        ("ledger:\n  synchronous: 1\n", "ledger.synchronous: must be text"),
        ("ledger:\n  batch_size: null\n", "ledger.batch_size: must be a whole number"),
    ],
)
def test_value_of_the_wrong_type_is_an_error_naming_the_key(
    write_file: WriteFile, text: str, expected: str
) -> None:
    message = config_error(write_file, text)
    assert message.startswith(f"{write_file('config.yaml', text)}: ")
    assert expected in message


# --- ranges and rules ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("onenet:\n  base_url: ftp://api.heclouds.com\n", "onenet.base_url: 'ftp://api.heclouds"),
        ("onenet:\n  base_url: api.heclouds.com\n", "is not an http(s) URL"),
        ("onenet:\n  base_url: 'http://'\n", "is not an http(s) URL"),
        ("onenet:\n  api_key_env: ''\n", "onenet.api_key_env: name the environment variable"),
        ("limits:\n  rate_per_second: -1\n", "limits.rate_per_second: -1.0 must be positive"),
        ("limits:\n  concurrency: 0\n", "limits.concurrency: 0 must be within 1..1024"),
        ("limits:\n  concurrency: 1025\n", "limits.concurrency: 1025 must be within 1..1024"),
        ("retry:\n  max_attempts: 0\n", "retry.max_attempts: 0 must be within 1..100"),
        ("retry:\n  max_attempts: 101\n", "retry.max_attempts: 101 must be within 1..100"),
        ("retry:\n  initial_backoff_s: -0.1\n", "need 0 <= initial_backoff_s <= max_backoff_s"),
        (
            "retry:\n  initial_backoff_s: 5\n  max_backoff_s: 4\n",
            "need 0 <= initial_backoff_s <= max_backoff_s",
        ),
        ("retry:\n  request_timeout_s: 0\n", "retry.request_timeout_s: must be positive"),
        ("reliability:\n  settle_s: -1\n", "reliability: durations must not be negative"),
        ("reliability:\n  stop_grace_s: -1\n", "reliability: durations must not be negative"),
        (
            "reliability:\n  reconcile_lookback_s: -1\n",
            "reliability: durations must not be negative",
        ),
        ("reliability:\n  breaker_threshold: 0\n", "breaker_threshold >= 1"),
        ("reliability:\n  reconcile_rounds: -1\n", "reconcile_rounds >= 0"),
        ("ledger:\n  synchronous: 'off'\n", "ledger.synchronous: 'off' must be full or normal"),
        ("ledger:\n  batch_size: 0\n", "ledger.batch_size: must be at least 1"),
    ],
)
def test_value_out_of_range_is_an_error_naming_the_key(
    write_file: WriteFile, text: str, expected: str
) -> None:
    assert expected in config_error(write_file, text)


@pytest.mark.parametrize(
    "text",
    [
        "limits:\n  concurrency: 1\n",
        "limits:\n  concurrency: 1024\n",
        "retry:\n  max_attempts: 1\n",
        "retry:\n  max_attempts: 100\n",
        "retry:\n  initial_backoff_s: 0\n  max_backoff_s: 0\n",
        "reliability:\n  breaker_threshold: 1\n  reconcile_rounds: 0\n  settle_s: 0\n",
        "ledger:\n  synchronous: normal\n  batch_size: 1\n",
        "onenet:\n  base_url: http://[::1]:8080\n",
    ],
)
def test_values_at_the_edges_of_their_ranges_are_accepted(write_file: WriteFile, text: str) -> None:
    assert isinstance(load_text(write_file, text), Settings)


@pytest.mark.parametrize(
    ("section", "key"),
    [
        ("limits", "rate_per_second"),
        ("retry", "request_timeout_s"),
        ("retry", "max_backoff_s"),
        ("reliability", "stop_grace_s"),
    ],
)
def test_not_a_number_is_rejected(write_file: WriteFile, section: str, key: str) -> None:
    assert key in config_error(write_file, f"{section}:\n  {key}: .nan\n")


def test_every_range_problem_is_reported_at_once(write_file: WriteFile) -> None:
    message = config_error(
        write_file,
        "limits:\n  concurrency: 0\nretry:\n  max_attempts: 0\nledger:\n  batch_size: 0\n",
    )
    assert "limits.concurrency" in message
    assert "retry.max_attempts" in message
    assert "ledger.batch_size" in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("onenet:\n  base_url: http://h:99999\n", "is not an http(s) URL: port out of range"),
        ("onenet:\n  base_url: http://[::1\n", "is not an http(s) URL: invalid IPv6 URL"),
        ("limits:\n  rate_per_second: 1" + "0" * 400 + "\n", "rate_per_second: must be a number"),
        ("reliability:\n  settle_s: 1" + "0" * 400 + "\n", "settle_s: must be a number"),
        ("limits:\n  concurrency: 2020-13-45\n", "not valid YAML (month must be in 1..12)"),
        ("limits:\n  concurrency: !!int abc\n", "not valid YAML (invalid literal for int()"),
        ("limits:\n  concurrency: " + "9" * 5000 + "\n", "not valid YAML (Exceeds the limit"),
        ('onenet:\n  api_key_env: "\\ud800"\n', "onenet.api_key_env: '\\ud800' is not"),
        ("onenet:\n  api_key_env: A=B\n", "onenet.api_key_env: 'A=B' is not the name of an"),
        ('onenet:\n  api_key_env: "A\\0"\n', "onenet.api_key_env: 'A\\x00' is not the name"),
    ],
)
def test_values_python_cannot_take_are_config_errors_not_tracebacks(
    write_file: WriteFile, text: str, expected: str
) -> None:
    message = config_error(write_file, text)
    assert expected in message
    assert "\n" not in message


@pytest.mark.parametrize("name", ["\ud800", "A=B", "A\x00"])
def test_api_key_env_that_cannot_name_a_variable_is_a_config_error(name: str) -> None:
    settings = Settings(onenet=OneNetSettings(api_key_env=name))
    with pytest.raises(ConfigError, match="is not the name of an environment variable"):
        api_key_from_env(settings)


# --- unknown names, malformed files -------------------------------------------------------------


def test_unknown_section_suggests_the_closest(write_file: WriteFile) -> None:
    path = write_file("config.yaml", "limit:\n  concurrency: 3\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert str(caught.value) == f"{path}: unknown section 'limit' (did you mean 'limits'?)"


def test_unknown_section_with_no_close_name_lists_the_known_ones(write_file: WriteFile) -> None:
    message = config_error(write_file, "zzz: {}\n")
    assert message.endswith(
        "unknown section 'zzz' (known: ledger, limits, onenet, reliability, retry)"
    )


def test_unknown_key_suggests_the_closest(write_file: WriteFile) -> None:
    path = write_file("config.yaml", "limits:\n  rate_per_secnd: 3\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert str(caught.value) == (
        f"{path}: limits.rate_per_secnd: unknown key (did you mean 'rate_per_second'?)"
    )


def test_unknown_key_with_no_close_name_lists_the_known_ones(write_file: WriteFile) -> None:
    message = config_error(write_file, "onenet:\n  password: hunter2\n")
    assert "onenet.password: unknown key (known: api_key_env, base_url, platform, token)" in message


def test_the_api_key_itself_is_not_a_config_key(write_file: WriteFile) -> None:
    message = config_error(write_file, f"onenet:\n  api_key: {SECRET}\n")
    assert "onenet.api_key: unknown key" in message
    assert "api_key_env" in message
    assert SECRET not in message


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("limits:\n\tconcurrency: 3\n", 2),
        ("onenet:\n  base_url: x\nlimits:\n  concurrency: [1, 2\nretry:\n  max_attempts: 3\n", 5),
        ("retry:\n  max_attempts: 3\n  max_attempts 4\n  x: y\n", 4),
    ],
)
def test_invalid_yaml_is_an_error_with_its_line(
    write_file: WriteFile, text: str, line: int
) -> None:
    path = write_file("config.yaml", text)
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert str(caught.value).startswith(f"{path}:{line}: not valid YAML (")


@pytest.mark.parametrize("text", ["- onenet\n- limits\n", "just text\n", "42\n"])
def test_config_that_is_not_a_mapping_is_an_error(write_file: WriteFile, text: str) -> None:
    assert config_error(write_file, text).endswith("the config must be a mapping of sections")


@pytest.mark.parametrize("text", ["limits: 5\n", "limits: [a, b]\n", "retry: fast\n"])
def test_section_that_is_not_a_mapping_is_an_error(write_file: WriteFile, text: str) -> None:
    section = text.split(":")[0]
    assert config_error(write_file, text).endswith(f": {section}: must be a mapping of keys")


def test_missing_file_is_an_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.yaml"
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert str(caught.value).startswith(f"{path}: cannot read the config file (")


def test_directory_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(tmp_path)
    assert str(caught.value).startswith(f"{tmp_path}: cannot read the config file")


def test_binary_file_is_an_error(write_file: WriteFile) -> None:
    message = config_error(write_file, b"\xff\xfe\x00\x81garbage\x00")
    assert message.endswith("not a UTF-8 text file")


def test_config_error_is_a_dispatcher_error() -> None:
    assert issubclass(ConfigError, DispatcherError)


# --- flags ---------------------------------------------------------------------------------


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


# --- the api-key -----------------------------------------------------------------------------


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
    assert set(data) == {*SECTIONS, "products"}
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


# --- plain http ------------------------------------------------------------------------------


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

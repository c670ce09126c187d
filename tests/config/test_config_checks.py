"""Settings: every check of the file: types, ranges, unknown names with suggestions, malformed or
missing files."""

from __future__ import annotations

from pathlib import Path

import pytest

from dispatcher.config import (
    OneNetSettings,
    Settings,
    api_key_from_env,
    load_settings,
)
from dispatcher.errors import ConfigError, DispatcherError
from tests.support.configs import (
    SECRET,
    load_text,
)
from tests.support.files import WriteFile


def config_error(write_file: WriteFile, text: str | bytes, name: str = "config.yaml") -> str:
    with pytest.raises(ConfigError) as caught:
        load_text(write_file, text, name)
    return str(caught.value)


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


def test_unknown_section_suggests_the_closest(write_file: WriteFile) -> None:
    path = write_file("config.yaml", "limit:\n  concurrency: 3\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert str(caught.value) == (
        f"{path}: unknown section 'limit' (did you mean 'limits'? sections: ledger, limits,"
        " notify, onenet, products, reliability, retry)"
    )


def test_unknown_section_with_no_close_name_lists_the_known_ones(write_file: WriteFile) -> None:
    message = config_error(write_file, "zzz: {}\n")
    assert message.endswith(
        "unknown section 'zzz' (sections: ledger, limits, notify, onenet, products, reliability,"
        " retry)"
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

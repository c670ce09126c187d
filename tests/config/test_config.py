"""Settings: the defaults, the documented example, and every key read from the file."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from dispatcher.config import (
    LedgerSettings,
    Limits,
    OneNetSettings,
    ReliabilitySettings,
    RetrySettings,
    Settings,
    load_settings,
)
from dispatcher.errors import ConfigError
from tests.support.configs import (
    SECTIONS,
    load_text,
)
from tests.support.files import WriteFile

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config.example.yaml"


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


def test_a_shared_ledger_url_is_read(write_file: WriteFile) -> None:
    s = load_text(write_file, "ledger:\n  url: postgresql://ops@db.internal:5433/dispatcher\n")
    assert s.ledger == LedgerSettings(url="postgresql://ops@db.internal:5433/dispatcher")


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("postgresql://ops:hunter2@db/dispatcher", "holds a password: leave it out"),
        ("postgresql://ops@db/dispatcher?password=hunter2", "holds a password: leave it out"),
        ("postgresql://ops:hun/ter2@db/dispatcher", "holds a password"),
        ("mysql://ops@db/dispatcher", "is not a postgresql://user@host/dbname URL"),
        ("postgresql://ops@db", "name the database after the host"),
        ("postgresql://ops@db/dispatcher#fleet", "names no job"),
    ],
)
def test_a_wrong_ledger_url_is_refused_saying_why(
    write_file: WriteFile, url: str, said: str
) -> None:
    with pytest.raises(ConfigError, match=said) as caught:
        load_text(write_file, f"ledger:\n  url: {url}\n")
    assert "hunter2" not in str(caught.value) and "ter2" not in str(caught.value)

"""Numbers given on the command line and in the config: ``nan`` and ``inf`` (and a negative
number where none means anything) are refused as usage errors, exit 2, with the flag named, by
every float flag of every command; the config refuses them in every number it reads."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from dispatcher.cli.commands import main
from dispatcher.config import load_settings
from dispatcher.errors import ConfigError


def float_flags() -> Iterator[tuple[str, click.Command, click.Option]]:
    """(command name, command, option) for each float option of every command."""
    ctx = click.Context(main)
    for name in main.list_commands(ctx):
        command = main.get_command(ctx, name)
        assert command is not None
        for param in command.params:
            if isinstance(param, click.Option) and isinstance(
                param.type, click.types.FloatParamType
            ):
                yield name, command, param


FLAGS = [(name, option.opts[0]) for name, _, option in float_flags()]


def test_the_float_flags_are_found() -> None:
    found = set(FLAGS)
    for known in [("status", "--interval"), ("status", "--rate"), ("run", "--rate"),
                  ("run", "--ramp-factor"), ("run", "--max-failure-rate"),
                  ("cancel", "--rate"), ("emulator", "--fail-rate"),
                  ("emulator", "--clock-offset")]:  # fmt: skip
        assert known in found


@pytest.mark.parametrize("text", ["nan", "inf", "-inf", "NaN", "1e999"])
@pytest.mark.parametrize(("name", "flag"), FLAGS)
def test_every_float_flag_refuses_what_is_not_a_finite_number(
    name: str, flag: str, text: str, tmp_path: Path
) -> None:
    command = main.get_command(click.Context(main), name)
    assert command is not None
    arguments = [str(tmp_path / "x") for p in command.params if isinstance(p, click.Argument)]
    extra = ["--watch"] if flag == "--interval" else []
    result = CliRunner().invoke(main, [name, *arguments, *extra, flag, text], env={})
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    assert f"Invalid value for '{flag}'" in result.output
    assert "not a finite number" in result.output


@pytest.mark.parametrize(
    ("name", "flag"),
    [
        ("status", "--interval"),
        ("run", "--rate"),
        ("status", "--rate"),
        ("emulator", "--latency-ms"),
    ],
)
def test_a_negative_number_is_refused_where_it_means_nothing(
    name: str, flag: str, tmp_path: Path
) -> None:
    args = [str(tmp_path / "x")] if name in ("status", "run") else []
    extra = ["--watch"] if flag == "--interval" else []
    result = CliRunner().invoke(main, [name, *args, *extra, flag, "-1"], env={})
    assert result.exit_code == 2, result.output
    assert f"Invalid value for '{flag}'" in result.output or flag.lstrip("-") in result.output


def test_a_watch_interval_longer_than_a_day_is_refused(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["status", str(tmp_path / "x"), "--watch", "--interval", "1e9"], env={}
    )
    assert result.exit_code == 2, result.output
    assert "Invalid value for '--interval'" in result.output


@pytest.mark.parametrize("text", [".nan", ".inf", "-.inf", ".NaN", "1e999"])
@pytest.mark.parametrize(
    "key",
    ["limits: {rate_per_second: VALUE}", "retry: {max_backoff_s: VALUE}",
     "retry: {request_timeout_s: VALUE}", "reliability: {delivery_poll_s: VALUE}",
     "reliability: {stop_grace_s: VALUE}",
     "products: {meters: {api_key_env: K, rate_per_second: VALUE}}"],
)  # fmt: skip
def test_the_config_refuses_numbers_that_are_not_finite(
    key: str, text: str, tmp_path: Path
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(key.replace("VALUE", text), encoding="utf-8")
    with pytest.raises(ConfigError, match="must be a number"):
        load_settings(path)


@pytest.mark.parametrize("text", ["nan", "infs", "nanm", "1e999s", "inf"])
def test_a_config_duration_refuses_text_that_is_not_a_finite_number(
    text: str, tmp_path: Path
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        "onenet:\n  platform: iot-api\n  token: {access_key_env: K, res: products/p,"
        f" lifetime: {text}}}\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match="lifetime: must be a duration"):
        load_settings(path)

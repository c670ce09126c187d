"""The help the command line prints: every command's description whole in `dispatcher --help`,
every option's help whole in `COMMAND --help`, and the closing text of the commands that talk to
OneNET (and of validate): where the api-key comes from, and each exit code the command can end
with, one to a line."""

from __future__ import annotations

import re

import click
import pytest
from click.testing import CliRunner

from dispatcher.cli.commands import main
from dispatcher.cli.exits import (
    EXIT_BREAKER,
    EXIT_BROKEN,
    EXIT_INCOMPLETE,
    EXIT_INTERRUPTED,
    EXIT_INVALID,
    EXIT_OK,
    EXIT_USAGE,
)
from tests.support.cli import invoke

_CTX = main.make_context("dispatcher", ["--help"], resilient_parsing=True)
NAMES = main.list_commands(_CTX)
_CODE_LINE = re.compile(r"^\s+(\d+)\s+(\S.*)$")


def _command(name: str) -> click.Command:
    command = main.get_command(_CTX, name)
    assert command is not None
    return command


def _flat(text: str) -> str:
    """``text`` with every run of white space one space: help as it reads, wrapped or not."""
    return " ".join(text.split())


def _exit_codes(help_text: str) -> dict[int, str]:
    """The codes of the help's "Exit codes:" section, each with its meaning (its own line, and
    the lines that continue it)."""
    lines = help_text.partition("Exit codes:\n")[2].splitlines()
    codes: dict[int, str] = {}
    last = None
    for line in lines:
        match = _CODE_LINE.match(line)
        if match:
            last = int(match[1])
            codes[last] = match[2]
        elif line.strip() and last is not None and line.startswith("   "):
            codes[last] += " " + line.strip()
        else:
            break
    return codes


@pytest.mark.parametrize("width", [80, 60])  # a usual terminal, and a narrow one
def test_the_command_list_shows_every_description_whole(width: int) -> None:
    result = CliRunner().invoke(main, ["--help"], terminal_width=width)
    assert result.exit_code == 0
    body = result.stdout.splitlines()[1:]  # the usage line ends in "[ARGS]..."
    assert [line for line in body if line.rstrip().endswith("...")] == []
    for name in NAMES:
        summary = _command(name).short_help
        assert summary, f"{name} has no short help: click would cut its first sentence"
        assert _flat(f"{name} {summary}") in _flat(result.stdout)


@pytest.mark.parametrize("name", NAMES)
def test_every_option_help_is_shown_whole(name: str) -> None:
    result = invoke(name, "--help")
    assert result.exit_code == 0
    shown = _flat(result.stdout)
    for param in _command(name).params:
        if isinstance(param, click.Option) and param.help and not param.hidden:
            assert _flat(param.help) in shown, param.name
    body = result.stdout.splitlines()[1:]  # the usage line ends in "..." for many arguments
    assert [line for line in body if line.rstrip().endswith("...")] == []
    assert "None]" not in result.stdout  # a number flag with no bound: no "[x<=None]"


def test_run_help_says_where_the_api_key_comes_from() -> None:
    shown = _flat(invoke("run", "--help").stdout)
    assert "Environment: ONENET_API_KEY" in shown
    assert "onenet.api_key_env" in shown  # another variable for the one product
    assert "products:" in shown and "api_key_env" in shown  # a key per product
    assert "access_key_env" in shown  # the newer platform's access key


def test_run_help_lists_every_exit_code_a_run_can_end_with() -> None:
    codes = _exit_codes(invoke("run", "--help").stdout)
    assert set(codes) == {
        EXIT_OK,
        EXIT_INVALID,
        EXIT_USAGE,
        EXIT_INCOMPLETE,
        EXIT_BREAKER,
        EXIT_BROKEN,
        EXIT_INTERRUPTED,
    }
    assert "every command accepted" in codes[EXIT_OK]
    assert "nothing was sent" in codes[EXIT_INVALID]
    assert "breaker" in codes[EXIT_BREAKER] and "api-key" in codes[EXIT_BREAKER]
    assert "resumes" in codes[EXIT_INTERRUPTED]


@pytest.mark.parametrize(
    ("name", "telling", "says"),
    [
        ("status", EXIT_OK, "every delivery state was read"),
        ("status", EXIT_INCOMPLETE, "could not be read"),
        ("verify", EXIT_OK, "every device is on target"),
        ("verify", EXIT_INVALID, "some devices failed"),
        ("verify", EXIT_INCOMPLETE, "never seen"),
        ("cancel", EXIT_OK, "every waiting command was cancelled"),
        ("cancel", EXIT_USAGE, "--yes"),
        ("cancel", EXIT_INCOMPLETE, "could not be cancelled"),
    ],
)
def test_the_follow_up_commands_list_their_own_exit_codes(
    name: str, telling: int, says: str
) -> None:
    result = invoke(name, "--help")
    codes = _exit_codes(result.stdout)
    assert set(codes) == {
        EXIT_OK,
        EXIT_INVALID,
        EXIT_USAGE,
        EXIT_INCOMPLETE,
        EXIT_BROKEN,
        EXIT_INTERRUPTED,
    }
    assert says in codes[telling]
    assert "ONENET_API_KEY" in result.stdout


def test_validate_help_lists_its_exit_codes_and_needs_no_key() -> None:
    result = invoke("validate", "--help")
    assert set(_exit_codes(result.stdout)) == {EXIT_OK, EXIT_INVALID, EXIT_USAGE}
    assert "ONENET_API_KEY" not in result.stdout  # it sends nothing

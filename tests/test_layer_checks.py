"""The checks that hold the layers, on snippets: an import of a higher layer is named with its line,
a module of no layer is refused, speaking is found and rich renderables are not, a circle is named
module by module."""

from __future__ import annotations

import ast

import pytest

from tests.support.layers import Import, _describe, cycles, imports_of, layer_violations, speaking

# -- the checks themselves, on snippets ----------------------------------------------------------


def _tree(source: str) -> ast.Module:
    return ast.parse(source)


@pytest.mark.parametrize(
    "source",
    [
        "from dispatcher.run.state import Stop\n",
        "import dispatcher.run.state\n",
        "def f():\n    from dispatcher.run import state\n",
        "if TYPE_CHECKING:\n    from dispatcher.run import Stop\n",
        "from ..run.state import Stop\n",
        "import importlib\nimportlib.import_module('dispatcher.run.state')\n",
    ],
)
def test_an_import_of_a_higher_layer_is_named_with_its_line(source: str) -> None:
    [wrong] = layer_violations("dispatcher.ledger.store", _tree(source))
    assert wrong.startswith("dispatcher.ledger.store (line ")
    assert "imports dispatcher.run" in wrong
    assert wrong.endswith("ledger may import only errors, model, times")


def test_imports_of_allowed_layers_and_of_others_pass() -> None:
    source = (
        "import sqlite3\nfrom dispatcher.errors import LedgerError\n"
        "from dispatcher.model.command import Command\nfrom dispatcher.ledger import records\n"
        "from . import schema\n"
    )
    assert layer_violations("dispatcher.ledger.store", _tree(source)) == []
    targets = [imp.target for imp in imports_of("dispatcher.ledger.store", _tree(source))]
    assert targets == [
        "dispatcher.errors",
        "dispatcher.model.command",
        "dispatcher.ledger.records",
        "dispatcher.ledger.schema",
    ]


def test_a_module_of_no_known_layer_is_refused() -> None:
    [wrong] = layer_violations("dispatcher.extra.thing", _tree(""))
    assert "no layer rule for 'extra'" in wrong


@pytest.mark.parametrize(
    ("source", "what"),
    [
        ("print('hi')\n", "calls print()"),
        ("from rich.console import Console\n", "imports Console from rich.console"),
        ("import rich.console\nc = rich.console.Console()\n", "uses rich.console.Console"),
        ("from rich.progress import Progress\n", "imports from rich.progress"),
        ("import signal\nsignal.signal(signal.SIGINT, print)\n", "installs a signal handler"),
        ("def f(loop, h):\n    loop.add_signal_handler(2, h)\n", "installs a signal handler"),
        ("import click\n", "imports click"),
        ("from click import echo\n", "imports from click"),
        ("import sys\nsys.stdout.write('hi')\n", "writes to the terminal"),
    ],
)
def test_printing_consoles_and_signal_handlers_are_found(source: str, what: str) -> None:
    found = speaking("dispatcher.run.runner", _tree(source))
    assert found and what in found[0]
    assert found[0].startswith("dispatcher.run.runner (line ")


def test_rich_renderables_and_other_calls_are_not_speaking() -> None:
    source = "from rich.table import Table\nlog.info('x')\nsignal.Signals(2).name\n"
    assert speaking("dispatcher.report.summary", _tree(source)) == []


def test_a_circle_is_named_module_by_module() -> None:
    a_b = Import("dispatcher.a", "dispatcher.b", 3)
    b_c = Import("dispatcher.b", "dispatcher.c", 5)
    c_a = Import("dispatcher.c", "dispatcher.a", 7)
    d_a = Import("dispatcher.d", "dispatcher.a", 1)
    edges = {
        "dispatcher.a": [a_b],
        "dispatcher.b": [b_c],
        "dispatcher.c": [c_a],
        "dispatcher.d": [d_a],
    }
    [circle] = cycles(edges)
    assert circle == [a_b, b_c, c_a]
    assert _describe(circle) == (
        "dispatcher.a -> dispatcher.b (line 3 of dispatcher.a) -> dispatcher.c (line 5 of"
        " dispatcher.b) -> dispatcher.a (line 7 of dispatcher.c)"
    )
    assert cycles({"dispatcher.a": [a_b], "dispatcher.b": [b_c]}) == []

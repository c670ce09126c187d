"""The package keeps its layers (tests/support/layers.py holds the map): every module imports only
the layers beneath it, only the command line speaks, no circles, aiohttp in one module only,
psycopg in the PostgreSQL ledger's modules only."""

from __future__ import annotations

from tests.support.layers import (
    AIOHTTP_LAYERS,
    AIOHTTP_MODULES,
    MODULES,
    PSYCOPG_MODULES,
    SOURCES,
    SPEAKERS,
    _describe,
    _edges,
    aiohttp_imports,
    cycles,
    imports_of,
    layer_of,
    layer_violations,
    psycopg_imports,
    speaking,
)

# -- the package ------------------------------------------------------------------------------


def test_every_module_imports_only_the_layers_beneath_it() -> None:
    wrong = [
        line for module, (_, tree) in SOURCES.items() for line in layer_violations(module, tree)
    ]
    assert not wrong, "imports across the layers:\n  " + "\n  ".join(wrong)


def test_only_the_command_line_prints_uses_a_console_or_installs_signal_handlers() -> None:
    wrong = [
        line
        for module, (_, tree) in SOURCES.items()
        if layer_of(module) not in SPEAKERS
        for line in speaking(module, tree)
    ]
    assert not wrong, "only dispatcher/cli/ may do this:\n  " + "\n  ".join(wrong)


def test_no_module_imports_itself_through_a_circle() -> None:
    found = cycles(_edges())
    assert not found, "import circles:\n  " + "\n  ".join(map(_describe, found))


def test_the_emulator_takes_from_onenet_only_the_transport_seam() -> None:
    wrong = [
        f"{imp.module} (line {imp.line}) imports {imp.target}"
        for module, (_, tree) in SOURCES.items()
        if layer_of(module) == "emulator"
        for imp in imports_of(module, tree)
        if layer_of(imp.target) == "onenet" and imp.target != "dispatcher.onenet.transport"
    ]
    assert not wrong, "the emulator may import only dispatcher.onenet.transport:\n  " + "\n  ".join(
        wrong
    )


def test_only_the_aiohttp_transport_and_the_notifications_sender_import_aiohttp() -> None:
    wrong = [
        f"{module} (line {line})"
        for module, (_, tree) in SOURCES.items()
        if layer_of(module) in AIOHTTP_LAYERS and module not in AIOHTTP_MODULES
        for line in aiohttp_imports(tree)
    ]
    only = ", ".join(sorted(AIOHTTP_MODULES))
    assert not wrong, f"only {only} may import aiohttp:\n  " + "\n  ".join(wrong)
    for module in AIOHTTP_MODULES:  # the scan sees each of those that do
        assert aiohttp_imports(SOURCES[module][1]), module


def test_only_the_postgresql_ledger_imports_psycopg() -> None:
    wrong = [
        f"{module} (line {line})"
        for module, (_, tree) in SOURCES.items()
        if module not in PSYCOPG_MODULES
        for line in psycopg_imports(tree)
    ]
    assert not wrong, "only dispatcher.ledger.postgres* may import psycopg:\n  " + "\n  ".join(
        wrong
    )
    assert {m for m in MODULES if m.startswith("dispatcher.ledger.postgres")} == PSYCOPG_MODULES
    assert psycopg_imports(SOURCES["dispatcher.ledger.postgres_session"][1])


def test_the_scan_sees_the_package_and_its_imports() -> None:
    assert {
        "dispatcher",
        "dispatcher.errors",
        "dispatcher.ledger",
        "dispatcher.cli.commands",
    } <= MODULES
    edges = _edges()
    assert "dispatcher.errors" in {imp.target for imp in edges["dispatcher.config.loading"]}
    assert "dispatcher.config" in {imp.target for imp in edges["dispatcher"]}

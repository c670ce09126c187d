"""The layers of the package and the scan that holds them: who may import whom, who may print or
catch signals, where aiohttp may be imported, and the import circles.

Read from the source with ``ast`` (nothing is imported): every ``dispatcher.*`` import counts,
at the top, inside functions and under ``TYPE_CHECKING`` alike. The tests are test_layers.py (the
package) and test_layer_checks.py (the checks, on snippets).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import dispatcher

ROOT = Path(dispatcher.__file__).parent
ANY = frozenset({"*"})

# What each layer may import besides itself. "dispatcher" is the public API (__init__.py): the
# library, never the command line. "__main__" is ``python -m dispatcher``: the command line.
LAYERS: Mapping[str, frozenset[str]] = {
    "errors": frozenset(),
    "lazy": frozenset(),
    "times": frozenset(),
    "clock": frozenset({"times"}),
    "config": frozenset({"errors"}),
    "lwm2m": frozenset({"errors"}),
    "model": frozenset({"errors", "times"}),
    "job": frozenset({"errors", "times", "lwm2m", "model"}),
    "onenet": frozenset({"errors", "times", "clock", "model"}),
    "ledger": frozenset({"errors", "times", "model"}),
    "run": frozenset({"errors", "times", "clock", "config", "model", "job", "onenet", "ledger"}),
    "report": frozenset({"errors", "times", "model", "ledger"}),
    "notify": frozenset({"errors", "times", "config", "model", "ledger", "report"}),
    "emulator": frozenset({"errors", "times", "model", "onenet"}),  # onenet.transport only: below
    "app": frozenset(
        {
            "errors",
            "times",
            "clock",
            "config",
            "lwm2m",
            "model",
            "job",
            "onenet",
            "ledger",
            "run",
            "report",
            "notify",
            "lazy",
        }
    ),
    "cli": ANY,
    "dispatcher": frozenset(
        {
            "errors",
            "times",
            "clock",
            "config",
            "model",
            "job",
            "onenet",
            "ledger",
            "run",
            "report",
            "emulator",
            "lazy",
        }
    ),
    "__main__": frozenset({"cli"}),
}
# Only these layers may talk to a person or to the process: print, rich consoles, signals.
SPEAKERS = frozenset({"cli"})
_RICH_CONSOLE_MODULES = ("rich.live", "rich.progress", "rich.prompt", "rich.status")
_RICH_CONSOLE_NAMES = frozenset({"Console", "get_console", "print", "inspect"})
_DYNAMIC_IMPORTS = frozenset({"importlib.import_module", "__import__"})


@dataclass(frozen=True, slots=True)
class Import:
    """One import of a dispatcher module, where it is written."""

    module: str
    target: str
    line: int


def module_name(path: Path) -> str:
    """``dispatcher/ledger/store.py`` -> ``dispatcher.ledger.store``; a package is its __init__."""
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> str:
    """The layer a module belongs to: its top-level subpackage or module under dispatcher."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def _sources() -> dict[str, tuple[Path, ast.Module]]:
    return {
        module_name(path): (path, ast.parse(path.read_text(encoding="utf-8"), str(path)))
        for path in sorted(ROOT.rglob("*.py"))
    }


SOURCES = _sources()
MODULES = frozenset(SOURCES)


def imports_of(module: str, tree: ast.Module, known: frozenset[str] = MODULES) -> list[Import]:
    """Every dispatcher module ``module`` imports (relative imports resolved), anywhere in it.

    ``from dispatcher.ledger import identity`` imports the module ``dispatcher.ledger.identity``;
    ``from dispatcher.ledger import Ledger`` imports the package ``dispatcher.ledger``.
    """
    is_package = any(m.startswith(module + ".") for m in known) or module == "dispatcher"
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _dotted(node.func) in _DYNAMIC_IMPORTS and node.args:
            first = node.args[0]  # importlib.import_module("dispatcher.cli"): an import too
            literal = first.value if isinstance(first, ast.Constant) else None
            if isinstance(literal, str) and _ours(literal):
                found.append(Import(module, literal, node.lineno))
        if isinstance(node, ast.Import):
            found += [Import(module, a.name, node.lineno) for a in node.names if _ours(a.name)]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".") if is_package else module.split(".")[:-1]
                anchor = package[: len(package) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            if not _ours(base):
                continue
            for alias in node.names:
                name = f"{base}.{alias.name}"
                found.append(Import(module, name if name in known else base, node.lineno))
    return found


def _ours(name: str) -> bool:
    return name == "dispatcher" or name.startswith("dispatcher.")


def layer_violations(module: str, tree: ast.Module) -> list[str]:
    """Each import of ``module`` that its layer does not allow, as a sentence naming both."""
    layer = layer_of(module)
    if layer not in LAYERS:
        return [
            f"{module}: no layer rule for {layer!r}: add it to LAYERS in tests/support/layers.py"
        ]
    allowed = LAYERS[layer]
    wrong = []
    for imp in imports_of(module, tree):
        target = layer_of(imp.target)
        if allowed is ANY or target == layer or target in allowed:
            continue
        may = ", ".join(sorted(allowed)) or "nothing of the package"
        wrong.append(
            f"{module} (line {imp.line}) imports {imp.target}: {layer} may import only {may}"
        )
    return wrong


def _dotted(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def speaking(module: str, tree: ast.Module) -> list[str]:
    """Where ``module`` prints, uses a rich console or installs a signal handler."""
    found = []

    def note(node: ast.stmt | ast.expr, what: str) -> None:
        found.append(f"{module} (line {node.lineno}) {what}")

    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            called = _dotted(node.func)
            if called in ("print", "builtins.print", "rich.print", "click.echo", "click.secho"):
                note(node, f"calls {called}()")
            elif called in ("sys.stdout.write", "sys.stderr.write"):
                note(node, f"writes to the terminal ({called})")
            elif called in ("signal.set_wakeup_fd", "signal.siginterrupt"):
                note(node, f"changes signal handling ({called})")
            elif called == "signal.signal" or called.endswith(".add_signal_handler"):
                note(node, f"installs a signal handler ({called})")
        elif isinstance(node, ast.Attribute) and node.attr in _RICH_CONSOLE_NAMES:
            if _dotted(node).startswith("rich."):
                note(node, f"uses {_dotted(node)}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith(_RICH_CONSOLE_MODULES):
                    note(node, f"imports {alias.name}")
                elif alias.name == "click" or alias.name.startswith("click."):
                    note(node, f"imports {alias.name} (the command line's toolkit)")
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = {a.name for a in node.names}
            if node.module.startswith(_RICH_CONSOLE_MODULES):
                note(node, f"imports from {node.module}")
            elif node.module in ("rich", "rich.console") and names & _RICH_CONSOLE_NAMES:
                shown = ", ".join(sorted(names & _RICH_CONSOLE_NAMES))
                note(node, f"imports {shown} from {node.module}")
            elif node.module == "signal" and "signal" in names:
                note(node, "imports signal.signal (a signal handler)")
            elif node.module == "click" or node.module.startswith("click."):
                note(node, f"imports from {node.module} (the command line's toolkit)")
    return found


def cycles(edges: Mapping[str, list[Import]]) -> list[list[Import]]:
    """Import circles among the modules, each as its imports (a depth-first walk: every import
    back to a module still being walked closes one)."""
    found: list[list[Import]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[Import] = []

    def visit(module: str) -> Iterator[list[Import]]:
        state[module] = 1
        for imp in edges.get(module, []):
            if state.get(imp.target) == 1:
                start = next((i for i, p in enumerate(path) if p.module == imp.target), len(path))
                yield [*path[start:], imp]
            elif imp.target not in state:
                path.append(imp)
                yield from visit(imp.target)
                path.pop()
        state[module] = 2

    for module in sorted(edges):
        if module not in state:
            found += visit(module)
    return found


def _describe(circle: list[Import]) -> str:
    steps = " -> ".join(f"{imp.target} (line {imp.line} of {imp.module})" for imp in circle)
    return f"{circle[0].module} -> {steps}"


def _edges() -> dict[str, list[Import]]:
    return {module: imports_of(module, tree) for module, (_, tree) in SOURCES.items()}


# Where aiohttp may be imported: the client's side reaches HTTP through one module per need, the
# OneNET transport and the notifications' sender (the emulator serves with it, apart).
AIOHTTP_LAYERS = frozenset({"onenet", "run", "app", "cli", "job", "ledger", "report", "notify"})
AIOHTTP_MODULES = frozenset({"dispatcher.onenet.aiohttp_transport", "dispatcher.notify.sender"})


# Where psycopg may be imported: the PostgreSQL ledger's own modules, which only opening a
# postgresql:// ledger loads (the command line starts, and runs on SQLite, without psycopg).
PSYCOPG_MODULES = frozenset(
    {
        "dispatcher.ledger.postgres_batch",
        "dispatcher.ledger.postgres_copy",
        "dispatcher.ledger.postgres_devices",
        "dispatcher.ledger.postgres_figures",
        "dispatcher.ledger.postgres_follow_ups",
        "dispatcher.ledger.postgres_identity",
        "dispatcher.ledger.postgres_jobs",
        "dispatcher.ledger.postgres_moves",
        "dispatcher.ledger.postgres_schema",
        "dispatcher.ledger.postgres_session",
        "dispatcher.ledger.postgres_share",
        "dispatcher.ledger.postgres_table",
        "dispatcher.ledger.postgres",
    }
)


def aiohttp_imports(tree: ast.Module) -> list[int]:
    """The lines where ``tree`` imports aiohttp (or a part of it), anywhere in it."""
    return library_imports(tree, "aiohttp")


def psycopg_imports(tree: ast.Module) -> list[int]:
    """The lines where ``tree`` imports psycopg (or a part of it), anywhere in it."""
    return library_imports(tree, "psycopg")


def library_imports(tree: ast.Module, library: str) -> list[int]:
    """The lines where ``tree`` imports ``library`` (or a part of it), anywhere in it."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level:
            names = [node.module or ""]
        else:
            continue
        if any(n == library or n.startswith(f"{library}.") for n in names):
            lines.append(node.lineno)
    return lines

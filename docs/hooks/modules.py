"""A mkdocs hook: the module map and the public API list, made from the code at build time.

`reference/modules.md` holds a `<!-- modules -->` marker, replaced by the package tree with the
first sentence of each module's docstring; `reference/api.md` holds `<!-- public-api -->`,
replaced by a mkdocstrings block for each name of `dispatcher.__all__`. The docstrings are read
with `ast`, and `__all__` from the package (whose names load on first use), so the pages stay
true to the code as it moves.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "dispatcher"
MODULES_MARKER = "<!-- modules -->"
MODULES_END = "<!-- /modules -->"  # the map is kept in the page too, so it reads in git
API_MARKER = "<!-- public-api -->"


def first_sentence(path: Path) -> str:
    """The first sentence (or first paragraph) of a module's docstring, on one line."""
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    paragraph = " ".join(doc.split("\n\n")[0].split())
    end = paragraph.find(". ")
    return paragraph if end < 0 else paragraph[: end + 1]


def module_rows(package: Path = PACKAGE) -> list[tuple[str, str]]:
    """(the module's dotted name, its first sentence), a package before its modules, sorted."""
    rows = []
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        rows.append((".".join(parts), first_sentence(path)))
    return sorted(rows, key=lambda row: row[0].split("."))


def modules_markdown(package: Path = PACKAGE) -> str:
    """The module map: one table row per package and module."""
    lines = ["| module | what it is |", "|---|---|"]
    packages = {path.parent for path in package.rglob("__init__.py")}
    for name, summary in module_rows(package):
        parts = name.split(".")[1:]  # its path below dispatcher/
        is_package = package.joinpath(*parts) in packages
        where = "/".join(parts) + ("/" if is_package else ".py") if parts else "dispatcher/"
        indent = "&nbsp;&nbsp;" * (len(parts) > 1)
        label = f"{indent}`{where}`"
        cell = summary.replace("|", "\\|")
        lines.append(f"| {label} | {cell} |")
    return "\n".join(lines) + "\n"


def public_names(package: str = "dispatcher") -> list[str]:
    """``package.__all__`` (names imported on first use: this loads nothing)."""
    return sorted(importlib.import_module(package).__all__)


def api_markdown() -> str:
    """A mkdocstrings block for each public name (the version string aside): the use cases of
    `dispatcher.app` first, then the package's own names."""
    blocks = ["## The use cases: `dispatcher.app`\n"]
    blocks += [f"::: dispatcher.app.{name}\n" for name in public_names("dispatcher.app")]
    blocks.append("## The pieces beneath: `dispatcher`\n")
    names = [n for n in public_names() if not n.startswith("__")]
    blocks += [f"::: dispatcher.{name}\n" for name in names]
    return "\n".join(blocks)


def with_module_map(markdown: str) -> str:
    """``markdown`` with the map between its module markers made anew from the code."""
    head, found, rest = markdown.partition(MODULES_MARKER)
    if not found:
        return markdown
    _, end, tail = rest.partition(MODULES_END)
    return f"{head}{MODULES_MARKER}\n{modules_markdown()}\n{MODULES_END}{tail if end else rest}"


def on_page_markdown(markdown: str, **_: Any) -> str:
    """Fill the markers of the reference pages."""
    markdown = with_module_map(markdown)
    if API_MARKER in markdown:
        markdown = markdown.replace(API_MARKER, api_markdown())
    return markdown


def on_config(config: Any, **_: Any) -> Any:
    """Load every command of the `dispatcher` group, which imports its commands on first use:
    mkdocs-click lists the commands a group holds, and the reference must show them all."""
    import click

    from dispatcher.cli.commands import main

    ctx = click.Context(main, info_name="dispatcher")
    for name in main.list_commands(ctx):
        main.get_command(ctx, name)
    return config


if __name__ == "__main__":  # python docs/hooks/modules.py: write the map into its page
    page = Path(__file__).resolve().parents[1] / "reference" / "modules.md"
    page.write_text(with_module_map(page.read_text(encoding="utf-8")), encoding="utf-8")

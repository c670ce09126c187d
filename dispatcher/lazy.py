"""A package's public names imported on first use (PEP 562), listed once.

The one list is the package's ``if TYPE_CHECKING:`` block of ``from module import Name as Name``
lines: the type checker reads it as it is, and ``public_names`` reads it from the source (never
running it) for ``__all__`` and for the lookup on first use.

May import: nothing of the package.
"""

from __future__ import annotations

import ast
import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["lazy_getattr", "public_names"]


def public_names(init_file: str) -> dict[str, str]:
    """Each name the ``if TYPE_CHECKING:`` block of ``init_file`` imports, and its module."""
    tree = ast.parse(Path(init_file).read_text(encoding="utf-8"))
    homes: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            for found in node.body:
                if isinstance(found, ast.ImportFrom) and found.module:
                    homes.update((a.asname or a.name, found.module) for a in found.names)
    return dict(sorted(homes.items()))


def lazy_getattr(
    package: str, homes: dict[str, str], space: dict[str, Any]
) -> Callable[[str], Any]:
    """A module ``__getattr__`` that imports a public name from its home the first time it is
    asked for, and keeps it in the package's namespace ``space``."""

    def getattr_(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(home), name)
        space[name] = value  # looked up once
        return value

    return getattr_

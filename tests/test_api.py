"""The public API: a sorted ``__all__`` whose every name resolves and says what it is."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from types import ModuleType

import pytest

import dispatcher

MODULES = sorted(
    info.name for info in pkgutil.walk_packages(dispatcher.__path__, prefix="dispatcher.")
)


def test_all_is_sorted_without_duplicates() -> None:
    names = list(dispatcher.__all__)
    assert names == sorted(names)
    assert len(names) == len(set(names))


def test_every_name_in_all_resolves() -> None:
    missing = [name for name in dispatcher.__all__ if not hasattr(dispatcher, name)]
    assert missing == []
    # Names are imported on first use: the table of where each lives is exactly __all__.
    assert sorted(dispatcher._HOME) == list(dispatcher.__all__)


def test_star_import_gives_exactly_all() -> None:
    namespace: dict[str, object] = {}
    exec("from dispatcher import *", namespace)
    assert set(namespace) - {"__builtins__"} == set(dispatcher.__all__)


def test_package_has_a_docstring() -> None:
    assert dispatcher.__doc__ is not None
    assert dispatcher.__doc__.strip()


@pytest.mark.parametrize("name", dispatcher.__all__)
def test_every_public_name_has_a_docstring(name: str) -> None:
    obj = getattr(dispatcher, name)
    doc = inspect.getdoc(obj)
    assert doc is not None
    assert doc.strip()
    if inspect.isclass(obj) and not issubclass(obj, BaseException):
        # A class's own docstring, not one inherited from a base (e.g. Enum's or object's).
        assert obj.__doc__ is not None
        assert obj.__doc__.strip()


def test_core_names_are_public() -> None:
    expected = {
        "Command",
        "ConfigError",
        "DispatcherError",
        "Job",
        "JobFileError",
        "Ledger",
        "LedgerError",
        "Settings",
        "load_job",
        "load_settings",
        "run_job",
        "validate_job",
    }
    assert expected <= set(dispatcher.__all__)


def test_public_errors_form_one_tree() -> None:
    errors = [
        getattr(dispatcher, name)
        for name in dispatcher.__all__
        if inspect.isclass(getattr(dispatcher, name))
        and issubclass(getattr(dispatcher, name), BaseException)
    ]
    assert dispatcher.DispatcherError in errors
    assert all(issubclass(error, dispatcher.DispatcherError) for error in errors)


def _public_module(name: str) -> ModuleType:
    return importlib.import_module(name)


def _isort_key(name: str) -> tuple[int, str]:
    """The order ruff's RUF022 keeps: CONSTANTS, then Classes, then functions, each alphabetical."""
    kind = 0 if name.isupper() else 1 if name[:1].isupper() else 2
    return kind, name


@pytest.mark.parametrize("module_name", MODULES)
def test_every_module_is_documented_and_its_all_is_sorted_and_resolves(module_name: str) -> None:
    module = _public_module(module_name)
    assert module.__doc__ is not None
    assert module.__doc__.strip()
    names = list(getattr(module, "__all__", []))
    assert names == sorted(names, key=_isort_key)
    assert [name for name in names if not hasattr(module, name)] == []


@pytest.mark.parametrize("module_name", MODULES)
def test_every_name_a_module_exports_has_a_docstring(module_name: str) -> None:
    module = _public_module(module_name)
    undocumented = []
    for name in getattr(module, "__all__", []):
        obj = getattr(module, name)
        if not (inspect.isclass(obj) or inspect.isfunction(obj)):
            continue  # constants carry a comment, not a docstring
        if obj.__doc__ is None or not obj.__doc__.strip():
            undocumented.append(name)
    assert undocumented == []

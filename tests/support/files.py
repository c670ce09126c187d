"""The type of the ``write_file`` fixture (tests/conftest.py): writes text or bytes to a file
under the test's tmp_path and gives its path."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

__all__ = ["WriteFile"]

WriteFile = Callable[[str, "str | bytes"], Path]

"""Shared fixtures: factories that write real files into the test's tmp_path."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.files import WriteFile
from tests.support.onenet import Routes


@pytest.fixture
def write_file(tmp_path: Path) -> WriteFile:
    """Write text (exactly as given, no newline translation) or bytes to tmp_path/name."""

    def write(name: str, content: str | bytes) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            content = content.encode("utf-8")
        path.write_bytes(content)
        return path

    return write


@pytest.fixture
def routes() -> Routes:
    """A scripted OneNET over a MockTransport (tests/support/onenet.py): the client's logic
    without sockets."""
    return Routes()

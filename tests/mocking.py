"""aioresponses fitted to aiohttp 3.14: its responses built with the stream writer aiohttp now
requires. The ``mocked`` fixture (conftest.py) is one of these."""

from __future__ import annotations

from typing import Any

import aiohttp
from aioresponses import aioresponses
from yarl import URL

__all__ = ["Mocked", "MockedResponse"]


class _NoWriter:
    output_size = 0


class MockedResponse(aiohttp.ClientResponse):
    """aioresponses 0.7.9 builds responses without the stream writer aiohttp 3.14 requires."""

    def __init__(self, method: str, url: URL, **kwargs: Any) -> None:
        kwargs.setdefault("stream_writer", _NoWriter())
        super().__init__(method, url, **kwargs)


class Mocked(aioresponses):
    def add(self, url: Any, method: str = "GET", *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("response_class", MockedResponse)
        super().add(url, method, *args, **kwargs)

"""Fixtures of the emulator's tests: its clocks and sleep, the emulator, and callers of it served
over loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from dispatcher.emulator.server import Emulator, serve
from tests.support.clocks import NOW, Clock
from tests.support.emulator_api import (
    Api,
    SleepSpy,
)


@pytest.fixture
def clock() -> Clock:
    """The emulator's server time, settable."""
    return Clock(NOW)


@pytest.fixture
def mono() -> Clock:
    """The emulator's monotonic clock, settable."""
    return Clock(1000.0)


@pytest.fixture
def sleep() -> SleepSpy:
    """The emulator's sleep, recording each delay."""
    return SleepSpy()


@pytest.fixture
def emulator(clock: Clock, mono: Clock, sleep: SleepSpy) -> Emulator:
    """An emulator on those clocks and sleep."""
    return Emulator(clock=clock, monotonic=mono, sleep=sleep)


@pytest.fixture
async def api(emulator: Emulator) -> AsyncIterator[Api]:
    """A caller of that emulator served over loopback."""
    async with serve(emulator) as url, aiohttp.ClientSession(url) as session:
        yield Api(session)

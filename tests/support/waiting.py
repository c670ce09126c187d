"""Waiting for a condition without timing anything: poll it, let the loop run in between."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

UNTIL_S = 30.0


async def until(
    condition: Callable[[], bool],
    *,
    proc: asyncio.subprocess.Process | None = None,
    interval: float = 0.01,
    within: float = UNTIL_S,
) -> None:
    """Return once ``condition()`` holds, polling every ``interval`` seconds (0: just let the
    loop run); while ``proc`` runs, if given (a process that ends first fails the test)."""
    try:
        async with asyncio.timeout(within):
            while not condition():
                assert proc is None or proc.returncode is None, (
                    "the run ended before the condition held"
                )
                await asyncio.sleep(interval)
    except TimeoutError:
        raise AssertionError("the condition never held") from None

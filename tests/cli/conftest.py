"""What every in-process CLI call leaves behind is undone after each test: the log handler it
installs and the secrets it registers to mask, so that no test's output is masked or redirected
by an earlier one."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from dispatcher.cli import console


@pytest.fixture(autouse=True)
def _fresh_cli_state() -> Iterator[None]:
    logger = logging.getLogger("dispatcher")
    saved = (list(logger.handlers), logger.level, logger.propagate)
    mask = console._mask
    yield
    logger.handlers[:], logger.level, logger.propagate = saved[0], saved[1], saved[2]
    console._mask = mask

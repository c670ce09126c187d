"""The one type of every float flag: a finite number, in a range when the flag has one.

Python's ``float`` reads ``nan``, ``inf`` and ``1e999`` as numbers, and a range check lets ``nan``
through (every comparison with it is false): ``--interval nan`` would reach ``asyncio.sleep`` and
``--interval inf`` sleep for ever holding the ledger's lock. Refused here, as a usage error (exit 2)
naming the flag, before the command starts.
"""

from __future__ import annotations

import math
from typing import Any

import click

__all__ = ["FiniteFloat"]


class FiniteFloat(click.FloatRange):
    """A float flag's type: a finite number, within ``min``..``max`` when given."""

    name = "number"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = click.FLOAT.convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return super().convert(number, param, ctx)

    def _describe_range(self) -> str:
        """The range for the help, none without a bound (click's would read "x<=None")."""
        if self.min is None and self.max is None:
            return ""
        return super()._describe_range()

"""The one type of every LEDGER argument and ``--ledger`` flag: a file's path, or a job of a
PostgreSQL ledger written as ``postgresql://user@host/dbname[#job]`` (ledger/address.py).

A URL is never made a :class:`~pathlib.Path` (that would fold its ``//``), and a malformed one is a
usage error (exit 2) naming the flag, with the password left out of the message; a password
written into it is masked in every line from then on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from dispatcher.cli import console
from dispatcher.ledger.address import LedgerAddress, PostgresAddress, is_url, parse_address

__all__ = ["LEDGER_HELP", "LedgerParam"]

LEDGER_HELP = "a file, or postgresql://user@host/dbname#job (a job of a PostgreSQL ledger)"


class LedgerParam(click.ParamType):  # type: ignore[type-arg]
    """A ledger's address: a path, or a ``postgresql://`` URL."""

    name = "ledger"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> LedgerAddress:
        if isinstance(value, Path | str) and not is_url(str(value)):
            return Path(value)
        try:
            address = parse_address(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)
        if isinstance(address, PostgresAddress):
            for secret in address.secrets:  # masked wherever it could be echoed (a libpq error)
                console.redact(secret)
        return address

"""The CSV of every problem device, offered by the page when its table is capped.

Written while the rows are read (the page learns only at the end whether its table was capped):
beside a page written to a file, as ``NAME.problems.csv`` (linked by a relative href; written to a
hidden file in the same directory and renamed into place, so no half-written CSV is left); for a
page on stdout, into a temporary file, embedded as a ``data:`` URI when it is under
:data:`EMBED_LIMIT` (a bigger one would make the page too heavy to open: the page says to use
``-o FILE``). UTF-8 with a BOM, so that a spreadsheet shows Chinese product names right.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Final

from dispatcher.report.problems import CSV_FIELDS, DeviceLine, csv_record

__all__ = ["EMBED_LIMIT", "CsvOffer", "ProblemsCsv", "csv_path"]

EMBED_LIMIT: Final = 2_000_000  # bytes of CSV embedded in a page on stdout, at most
_BOM: Final = "\ufeff"


def csv_path(page: Path) -> Path:
    """Where the CSV beside ``page`` goes: ``report.html`` -> ``report.problems.csv``."""
    return page.with_name(page.stem + ".problems.csv")


@dataclass(frozen=True, slots=True)
class CsvOffer:
    """How the page offers the CSV: a relative href, a data: URI, or neither (too big)."""

    href: str | None
    name: str  # the file name a browser saves it under
    too_big: bool


class ProblemsCsv:
    """A CSV of problem devices being written: call it with each line, then :meth:`offer` (the
    table was capped) or :meth:`drop`; a context manager that drops it on an error."""

    def __init__(self, page: Path | None, embed_limit: int = EMBED_LIMIT) -> None:
        self._target = None if page is None else csv_path(page)
        self._limit = embed_limit
        self._too_big = False
        self._bytes = 0
        self._file: IO[bytes]
        if self._target is None:
            # Closed by offer() or drop(), which the caller always calls: not a with block.
            self._file = tempfile.TemporaryFile()  # noqa: SIM115
        else:
            self._file = tempfile.NamedTemporaryFile(  # noqa: SIM115 (as above)
                dir=self._target.parent, prefix=f".{self._target.name}.", delete=False
            )
        self._writer = csv.writer(self)
        self.write(_BOM)
        self._writer.writerow(CSV_FIELDS)

    def write(self, text: str) -> int:
        """What the csv writer writes, as UTF-8 (a file-like for :func:`csv.writer`)."""
        data = text.encode()
        self._bytes += len(data)
        if self._target is None and self._bytes > self._limit:
            self._too_big = True  # stop writing: it will not be embedded
        else:
            self._file.write(data)
        return len(text)

    def __call__(self, line: DeviceLine) -> None:
        """Write one device's line."""
        if not self._too_big:
            self._writer.writerow(csv_record(line))

    def offer(self) -> CsvOffer:
        """The CSV made available to the page: renamed beside it, or embedded."""
        if self._target is not None:
            self._file.close()
            os.replace(self._file.name, self._target)
            return CsvOffer(self._target.name, self._target.name, False)
        name = "problems.csv"
        if self._too_big:
            self._file.close()
            return CsvOffer(None, name, True)
        self._file.seek(0)
        encoded = base64.b64encode(self._file.read())  # at most the limit's bytes, held once
        self._file.close()
        return CsvOffer("data:text/csv;charset=utf-8;base64," + encoded.decode(), name, False)

    def drop(self) -> None:
        """Leave no CSV (the table was not capped, or the page failed)."""
        self._file.close()
        if self._target is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._file.name)

    def __enter__(self) -> ProblemsCsv:
        return self

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        if kind is not None:
            self.drop()

"""Job files (YAML and CSV) into Command records, streamed, with every problem found.

A YAML job names the job, gives ``defaults:`` for any command field, and lists ``targets:`` (each
a mapping with ``imei`` and any field overriding the defaults) and/or ``targets_csv:`` (a CSV,
relative to the job file, whose rows are targets). A CSV job is a header row naming the fields,
then one command per row. CSV rows are read one at a time and never held, so a million-row fleet
validates in constant memory; duplicates and distinct devices are counted in a temporary on-disk
table (seen.py).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from operator import itemgetter
from pathlib import Path
from typing import Literal

from .errors import JobFileError
from .jobfields import FIELDS, NAMES, REQUIRED, Checked, Problem, RowChecker
from .jobfiles import Entry, csv_header, csv_rows, read_yaml
from .seen import SeenKeys
from .times import BEIJING, TimeSpec, now_beijing

__all__ = [
    "FIELDS",
    "Command",
    "Job",
    "Problem",
    "Validation",
    "command_key",
    "load_job",
    "validate_job",
]

_SENDING_CACHE_KIB = 2048  # duplicate tracking while sending: speed matters less than memory
_BATCH = 2000  # rows per duplicate check: bounds the rows held between checks
_CSV_FILE = 1 << 40  # position of a targets_csv row: (file << 40) | line
_NO_DEFAULTS = Entry(0, (None,) * len(NAMES), (0,) * len(NAMES))


@dataclass(frozen=True, slots=True)
class Command:
    """One cached execute command for one device, every value checked."""

    imei: str
    obj_id: int
    obj_inst_id: int
    res_id: int
    expired_time: TimeSpec
    valid_time: TimeSpec | None = None  # None: OneNET's default (server now)
    args: str | None = None
    retry: int = 3  # OneNET's device-side retries, 0..10
    timeout: int = 25  # 5..40
    trigger_msg: int = 7  # 1..7 bitmask 1 REGISTER, 2 UPDATE, 4 NOTIFY
    source: str = ""  # job file path as given (rows of targets_csv: the CSV's path)
    line: int = 0  # line of the target entry (YAML) or row (CSV, header = 1)
    key: str = ""  # ledger identity: see command_key()


def command_key(
    imei: str, obj_id: int, obj_inst_id: int, res_id: int, args: str | None, occurrence: int = 0
) -> str:
    """The ledger identity of a command: blake2b (16 bytes, hex) of imei, ids, args and occurrence.

    ``occurrence`` > 0 only for the 2nd, 3rd... copy of a command in a job with allow_duplicates.
    """
    tail = "\x00" if args is None else "\x01" + args
    text = f"{imei}\x1f{obj_id}\x1f{obj_inst_id}\x1f{res_id}\x1f{occurrence}\x1f{tail}"
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()


@dataclass(frozen=True, slots=True)
class Job:
    """The header of a job file; its commands are streamed by scan() and commands(), never held."""

    path: Path
    name: str
    allow_duplicates: bool
    format: Literal["yaml", "csv"]
    source: str  # the path as given, for messages
    defaults: Entry = field(default=_NO_DEFAULTS, repr=False)
    targets: tuple[Entry, ...] = field(default=(), repr=False)  # inline YAML targets
    targets_csv: Path | None = None  # the CSV of rows (the file itself for a CSV job)
    csv_source: str = ""  # that CSV's path as messages cite it
    problems: tuple[Problem, ...] = field(default=(), repr=False)  # found while loading

    def scan(
        self, *, at: datetime | None = None, strict: bool = False
    ) -> Iterator[Command | Problem]:
        """Every command and problem in file order, checked for a start at ``at`` (None: now)."""
        for item in self._checked(_start(at), strict, None):
            yield item if isinstance(item, Problem) else _command(item)

    def commands(self) -> Generator[Command, None, None]:
        """The commands to send now; JobFileError on the first error (warnings pass)."""
        for item in self.scan():
            if isinstance(item, Command):
                yield item
            elif not item.warning:
                raise JobFileError(item.file, item.line, item.field, item.message)

    def _checked(
        self, at: datetime, strict: bool, seen: SeenKeys | None
    ) -> Iterator[Checked | Problem]:
        """Checked rows and problems, duplicates settled a batch at a time."""
        own = seen is None
        # Sending (no caller's table) runs beside the ledger: a small cache keeps memory flat.
        keys = SeenKeys(_SENDING_CACHE_KIB) if seen is None else seen
        try:
            buffer: list[Checked | Problem] = []
            batch: list[tuple[int, int, int]] = []
            for item in self._rows(at, strict):
                buffer.append(item)
                if type(item) is Checked:
                    # Device: the IMEI itself (15 digits fit 64 bits), so devices count exactly.
                    batch.append((hash(item[1:5]), item.pos, int(item.imei)))
                    if len(batch) >= _BATCH:
                        yield from self._settle(keys, buffer, batch)
                        buffer, batch = [], []
                elif len(buffer) >= _BATCH and not batch:
                    yield from buffer
                    buffer = []
            yield from self._settle(keys, buffer, batch)
        finally:
            if own:
                keys.close()

    def _settle(
        self, keys: SeenKeys, buffer: list[Checked | Problem], batch: list[tuple[int, int, int]]
    ) -> Iterator[Checked | Problem]:
        repeats = keys.add(batch) if batch else None
        if repeats is None:
            yield from buffer
            return
        found = iter(repeats)
        for item in buffer:
            if isinstance(item, Checked):
                occurrence, first = next(found)
                if occurrence and self.allow_duplicates:
                    item = item._replace(occurrence=occurrence)
                elif occurrence:
                    file = self.csv_source if first >= _CSV_FILE else self.source
                    where = f"line {first % _CSV_FILE}"
                    where = where if file == item.source else f"{file}:{first % _CSV_FILE}"
                    message = (
                        f"the same command (imei, obj_id, obj_inst_id, res_id, args) as {where};"
                        " set allow_duplicates: true to send it again"
                    )
                    yield Problem(item.source, item.line, "imei", message)
                    continue
            yield item

    def _rows(self, at: datetime, strict: bool) -> Iterator[Checked | Problem]:
        """Checked rows and problems in file order, before duplicates are looked for."""
        d = self.defaults
        checker = RowChecker(
            self.source, at, strict=strict, defaults=d.values, default_lines=d.lines
        )
        yield from sorted([*self.problems, *checker.problems], key=lambda p: p.line)
        for entry in self.targets:
            row, problems = checker.check(entry.values, entry.line, entry.line, entry.lines)
            if entry.problems or problems:
                yield from sorted([*entry.problems, *(problems or ())], key=lambda p: p.line)
            if row is not None and not entry.broken:
                yield row
        if self.targets_csv is not None:
            yield from self._csv(at, strict)

    def _csv(self, at: datetime, strict: bool) -> Iterator[Checked | Problem]:
        source, in_yaml = self.csv_source, self.format == "yaml"
        d = self.defaults
        checker = RowChecker(
            source,
            at,
            strict=strict,
            defaults=d.values,
            default_lines=d.lines,
            default_file=self.source,
        )
        assert self.targets_csv is not None
        rows = csv_rows(self.targets_csv, source)
        first = next(rows, None)
        if first is None:
            raise JobFileError(source, 1, "", "the file is empty")
        header = csv_header(first[1], first[0], source)
        yield from header.problems
        missing = checker.absent(slot for slot in REQUIRED if header.columns[slot] is None)
        for slot in missing:
            message = "no such column" + (", and no default" if in_yaml else "")
            yield Problem(source, header.line, NAMES[slot], message)
        width = header.width
        getter = itemgetter(*(width if c is None else c for c in header.columns))
        check = checker.check
        base = _CSV_FILE if in_yaml else 0
        count = 0
        for line, row in rows:
            count += 1
            if len(row) != width:
                if len(row) < width or any(row[width:]):
                    message = f"has {len(row)} fields, the header has {width}"
                    yield Problem(source, line, "row", message)
                    continue
                del row[width:]  # trailing empty cells, as some spreadsheets export
            row.append("")
            checked, problems = check(getter(row), line, base | line)
            if problems:
                yield from problems
            if checked is not None:
                yield checked
        if not count:
            yield Problem(source, header.line, "", "no rows after the header row")


def _start(at: datetime | None) -> datetime:
    if at is None:
        return now_beijing()
    if at.tzinfo is None:
        return at.replace(tzinfo=BEIJING)
    return at.astimezone(BEIJING)


def _command(c: Checked) -> Command:
    return Command(
        imei=c.imei,
        obj_id=c.obj_id,
        obj_inst_id=c.obj_inst_id,
        res_id=c.res_id,
        expired_time=c.expired.spec,
        valid_time=None if c.valid is None else c.valid.spec,
        args=c.args,
        retry=c.retry,
        timeout=c.timeout,
        trigger_msg=c.trigger_msg,
        source=c.source,
        line=c.line,
        key=command_key(c.imei, c.obj_id, c.obj_inst_id, c.res_id, c.args, c.occurrence),
    )


def load_job(path: str | Path) -> Job:
    """Read a job file's header (YAML: all of it but the CSV rows); JobFileError if unreadable."""
    source, p = os.fspath(path), Path(path)
    if p.is_dir():
        raise JobFileError(source, 0, "", "is a directory, not a job file")
    suffix = p.suffix.lower()
    if suffix == ".csv":
        _check_csv(p, source)
        return Job(p, p.stem, False, "csv", source, targets_csv=p, csv_source=source)
    if suffix not in (".yaml", ".yml"):
        raise JobFileError(source, 0, "", "not a job file: name it .yaml, .yml or .csv")
    y = read_yaml(p, source)
    csv_path: Path | None = None
    csv_source = ""
    if y.targets_csv is not None:
        text, line = y.targets_csv
        csv_path = p.parent / text
        csv_source = str(csv_path)
        if not csv_path.is_file():
            what = "is a directory" if csv_path.is_dir() else "no such file"
            raise JobFileError(source, line, "targets_csv", f"{what}: {csv_source}")
        _check_csv(csv_path, csv_source)
    return Job(
        p,
        y.name or p.stem,
        y.allow_duplicates,
        "yaml",
        source,
        y.defaults,
        y.targets,
        csv_path,
        csv_source,
        y.problems,
    )


def _check_csv(path: Path, source: str) -> None:
    rows = csv_rows(path, source)
    try:
        first = next(rows, None)
    finally:
        rows.close()
    if first is None:
        raise JobFileError(source, 1, "", "the file is empty")
    csv_header(first[1], first[0], source)


@dataclass(frozen=True, slots=True)
class Validation:
    """What a dry run found: counts, and the time window the commands span."""

    commands: int
    devices: int
    errors: int
    warnings: int
    window_start: datetime | None  # the earliest valid_time (or the start checked against)
    window_end: datetime | None  # the latest expired_time

    @property
    def ok(self) -> bool:
        """True when there is no error (warnings allowed)."""
        return self.errors == 0


def _ignore(problem: Problem) -> None:
    """Drop a problem (the default listener)."""


def validate_job(
    job: Job,
    *,
    at: datetime | None = None,
    strict: bool = False,
    on_problem: Callable[[Problem], None] = _ignore,
) -> Validation:
    """Check every command for a start at ``at`` (None: now); each problem goes to on_problem."""
    start = _start(at)
    commands = errors = warnings = 0
    first: datetime | None = None
    last: datetime | None = None
    with SeenKeys() as seen:
        for item in job._checked(start, strict, seen):
            if type(item) is Checked:
                commands += 1
                begin = start if item.valid is None else item.valid.when
                if first is None or begin < first:
                    first = begin
                end = item.expired.when
                if last is None or end > last:
                    last = end
            else:
                assert isinstance(item, Problem)
                if item.warning:
                    warnings += 1
                else:
                    errors += 1
                on_problem(item)
        devices = seen.groups()
    return Validation(commands, devices, errors, warnings, first, last)

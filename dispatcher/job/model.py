"""Job files (YAML, CSV and .xlsx) into Command records, streamed, with every problem found.

A YAML job names the job, gives ``defaults:`` for any command field, and lists ``targets:`` (each
a mapping with ``imei`` and any field overriding the defaults) and/or ``targets_csv:`` (a CSV,
relative to the job file, whose rows are targets) or ``targets_xlsx:`` (a workbook's sheet); it
may say how it is sent (``rollout:``, ``schedule:``, ``window:``: the Job's ``plan``, read by
planfile.py). A CSV job is a header row naming the fields, then one command per row; an .xlsx job
the same in a sheet (table.py). CSV rows are read one at a time and never held, so
a million-row fleet validates in constant memory; duplicates and distinct devices are counted in a
temporary on-disk table (seen.py). ``validate_job`` also gives the job's fingerprint
(dispatcher/model/command.py), which changes with any field of any command but not with the order
of the rows.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Literal

from dispatcher.errors import JobFileError
from dispatcher.job.entries import Entry
from dispatcher.job.fields import RowChecker
from dispatcher.job.plan import Plan
from dispatcher.job.planfile import read_plan, start_passed
from dispatcher.job.query import QUERY_POS, QUERY_SOURCE, TargetsQuery, query_rows
from dispatcher.job.rows import (
    FIELDS,
    NAMES,
    OPERATION,
    Checked,
    PastTimes,
    Problem,
    at,
    command_of,
)
from dispatcher.job.seen import SeenKeys
from dispatcher.job.steps import overlay, target_steps
from dispatcher.job.table import (
    IN_STEPS,
    Reading,
    Table,
    job_file_table,
    not_for_yaml,
    table_checked,
    targets_table,
)
from dispatcher.job.validate import Validation, validate_job
from dispatcher.job.verifyspec import VerifySpec, verify_of
from dispatcher.job.waits import Wait
from dispatcher.job.yamlfile import SHEET_SUFFIXES, read_yaml
from dispatcher.model.command import (
    Command,
    command_fingerprint,
    command_key,
    job_fingerprint,
)
from dispatcher.times import start_of

__all__ = [
    "FIELDS",
    "Command",
    "Job",
    "PastTimes",
    "Problem",
    "Reading",
    "Validation",
    "command_fingerprint",
    "command_key",
    "job_fingerprint",
    "load_job",
    "validate_job",
]

_SENDING_CACHE_KIB = 2048  # duplicate tracking while sending: speed matters less than memory
_BATCH = 2000  # rows per duplicate check: bounds the rows held between checks
_CSV_FILE = 1 << 40  # position of a targets_csv row: (file << 40) | line
_NO_DEFAULTS = Entry(0, (None,) * len(NAMES), (0,) * len(NAMES))
_AGAIN = {  # how to send a repeated command all the same: a CSV job has no allow_duplicates
    "yaml": "; set allow_duplicates: true to send it again",
    "csv": (
        "; remove the repeat, or list this CSV as the targets_csv of a YAML job with"
        " allow_duplicates: true to send it again"
    ),
    "xlsx": (
        "; remove the repeat, or name this workbook as the targets_xlsx of a YAML job with"
        " allow_duplicates: true to send it again"
    ),
}


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
    targets_csv: Path | None = None  # the CSV or workbook of rows (the job file for a CSV job)
    csv_source: str = ""  # its rows as messages cite them (a sheet's: FILE:SHEET!)
    problems: tuple[Problem, ...] = field(default=(), repr=False)  # found while loading
    ignore_columns: tuple[str, ...] = ()  # of targets_csv (lowercase): skipped, not unknown
    plan: Plan = field(default_factory=Plan)  # rollout, schedule, window (a CSV job: none)
    start_at_line: int = 0  # of the plan's start_at, for its check against the start
    steps: tuple[Entry, ...] = field(default=(), repr=False)  # steps: sent to every device in turn
    only_product: str | None = None  # commands(): only those of this product ("": the default)
    query: TargetsQuery | None = None  # targets_query: (its devices are found at run time)
    queried: tuple[str, ...] = field(default=(), repr=False)  # their IMEIs, resolved or frozen
    waits: tuple[Wait, ...] = ()  # each step's: what the step after it waits for (waits.py)

    @property
    def gated(self) -> bool:
        """Whether a step waits for delivery: the run follows its steps' deliveries."""
        return any(w.until == "delivered" for w in self.waits)

    verify: VerifySpec | None = None  # what a device on target reads (verify:)
    table: Table | None = None  # targets_csv as read: a CSV's encoding, or a workbook's sheet

    def scan(
        self,
        *,
        at: datetime | None = None,
        strict: bool = False,
        past_times: PastTimes = "error",
    ) -> Iterator[Command | Problem]:
        """Every command and problem in file order, checked for a start at ``at`` (None: now).

        ``past_times``: a time already past at ``at`` is an error, a warning (the command is
        still given, for the sender to settle), or not reported at all ("allow").
        """
        for item in self.checked(start_of(at), strict, past_times, None):
            yield item if isinstance(item, Problem) else command_of(item)

    def commands(self) -> Generator[Command, None, None]:
        """The commands to send now; JobFileError on the first error (warnings pass).

        Sending comes after validation: a time that has passed since is not an error here (the
        sender leaves out a passed valid_time and records a command past its expired_time).
        With ``only_product``, only the commands of that product (one lane's share).
        """
        only = self.only_product
        for item in self.scan(past_times="allow"):
            if isinstance(item, Command):
                if only is None or item.product == only:
                    yield item
            elif not item.warning:
                raise JobFileError(item.file, item.line, item.field, item.message)

    def checked(
        self, at: datetime, strict: bool, past_times: PastTimes, seen: SeenKeys | None
    ) -> Iterator[Checked | Problem]:
        """Checked rows and problems, duplicates settled a batch at a time (for validate_job).

        ``seen``: the caller's table of keys, or None for a small one of its own.
        """
        own = seen is None
        # Sending (no caller's table) runs beside the ledger: a small cache keeps memory flat.
        keys = SeenKeys(_SENDING_CACHE_KIB) if seen is None else seen
        try:
            buffer: list[Checked | Problem] = []
            batch: list[tuple[int, int, int]] = []
            for item in self._rows(at, strict, past_times):
                buffer.append(item)
                if type(item) is Checked:
                    # Device: the IMEI itself (15 digits fit 64 bits), so devices count exactly.
                    batch.append((hash(item.key_tail), item.pos, int(item.imei)))
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
                    in_yaml = self.format == "yaml"
                    in_table = first >= _CSV_FILE or self.format == "csv"
                    file = self.csv_source if in_table else self.source
                    file = f"{self.source}: {QUERY_SOURCE}" if first >= QUERY_POS else file
                    row = "row" if file.endswith("!") else "line"
                    where = f"{row} {first % _CSV_FILE}"
                    where = where if file == item.source else at(file, first % _CSV_FILE)
                    message = (
                        f"the same command (imei, obj_id, obj_inst_id, res_id, args) as {where}"
                        + _AGAIN["xlsx" if file.endswith("!") and not in_yaml else self.format]
                    )
                    yield Problem(item.source, item.line, "imei", message)
                    continue
            yield item

    def _checkers(
        self, source: str, at: datetime, strict: bool, past_times: PastTimes, from_csv: bool
    ) -> list[RowChecker]:
        """The row checker of each step (one for a job without steps), for rows of ``source``."""
        d = self.defaults
        layers = [(d.values, d.lines, d.refused)]
        if self.steps:
            layers = [overlay(d, step) for step in self.steps]
        return [
            RowChecker(
                source,
                at,
                strict=strict,
                past_times=past_times,
                from_csv=from_csv,
                defaults=values,
                default_lines=lines,
                default_file=self.source,
                refused_defaults=refused,
                window=self.plan.window,
                step=number if self.steps else 0,
            )
            for number, (values, lines, refused) in enumerate(layers, 1)
        ]

    def _rows(
        self, at: datetime, strict: bool, past_times: PastTimes
    ) -> Iterator[Checked | Problem]:
        """Checked rows and problems in file order, before duplicates are looked for; then the
        queried devices the job's own targets do not list (theirs is the row taken)."""
        if not self.queried:
            yield from self._listed(at, strict, past_times)
            return
        queried, listed = frozenset(self.queried), set()
        for item in self._listed(at, strict, past_times):
            if type(item) is Checked and item.imei in queried:
                listed.add(item.imei)
            yield item
        source = f"{self.source}: {QUERY_SOURCE}"
        checkers = self._checkers(source, at, strict, past_times, False)
        product = None if self.query is None else self.query.product
        yield from query_rows(checkers, self.queried, product, frozenset(listed))

    def _listed(
        self, at: datetime, strict: bool, past_times: PastTimes
    ) -> Iterator[Checked | Problem]:
        """The rows of the job's own targets (inline, then targets_csv), and the problems."""
        checkers = self._checkers(self.source, at, strict, past_times, False)
        found = [*self._plan_problems(at, strict, past_times)]
        found += dict.fromkeys(p for checker in checkers for p in checker.problems)
        yield from sorted(found, key=lambda p: p.line)
        for entry in self.targets:
            given = self._operation_given(entry)
            rows: list[Checked] = []
            problems: list[Problem] = []
            if not given:  # else its rows would say it again, once per step
                rows, problems = target_steps(checkers, entry)
            if problems and entry.refused:  # a field refused as written is not missing too
                refused = {NAMES[slot] for slot in entry.refused}
                problems = [p for p in problems if p.field not in refused]
            if entry.problems or problems or given:
                yield from sorted([*entry.problems, *given, *problems], key=lambda p: p.line)
            if not entry.broken and not given:
                yield from rows
        if self.table is not None:
            checkers = self._checkers(self.table.rows_source, at, strict, past_times, True)
            in_yaml = self.format == "yaml"
            yield from table_checked(
                self.table,
                checkers,
                ignore=self.ignore_columns,
                in_yaml=in_yaml,
                steps=bool(self.steps),
                base=_CSV_FILE if in_yaml else 0,
            )

    def _operation_given(self, entry: Entry) -> list[Problem]:
        """In a job with steps, a target that says what is done: each step says that."""
        if not self.steps:
            return []
        return [
            Problem(self.source, entry.lines[slot], NAMES[slot], IN_STEPS)
            for slot in OPERATION
            if entry.values[slot] is not None
        ]

    def _plan_problems(
        self, at: datetime, strict: bool, past_times: PastTimes
    ) -> Iterator[Problem]:
        """The problems found while loading (warnings made errors by ``strict``), then a start_at
        that is past at ``at`` (a warning: whoever starts the job decides)."""
        for p in self.problems:
            yield replace(p, warning=False) if strict and p.warning else p
        if past_times != "allow":
            yield from start_passed(self.plan, self.source, self.start_at_line, at, strict)


def load_job(path: str | Path, reading: Reading | None = None) -> Job:
    """Read a job file's header (YAML: all of it but the CSV rows); JobFileError if unreadable.

    ``reading`` applies to a CSV or sheet job file; a YAML job says it in the file.
    """
    reading = Reading() if reading is None else reading
    source, p = os.fspath(path), Path(path)
    if p.is_dir():
        raise JobFileError(source, 0, "", "is a directory, not a job file")
    suffix = p.suffix.lower()
    if suffix == ".csv" or suffix in SHEET_SUFFIXES:
        rows = job_file_table(p, source, reading)
        return Job(
            p, p.stem, False, "csv", source, targets_csv=p, csv_source=rows.rows_source,
            ignore_columns=reading.ignore_columns, table=rows,
        )  # fmt: skip
    if suffix not in (".yaml", ".yml"):
        raise JobFileError(source, 0, "", "not a job file: name it .yaml, .yml, .csv or .xlsx")
    not_for_yaml(source, reading)
    y = read_yaml(p, source)
    plan = read_plan(y.sections, source)
    verify, verify_problems = verify_of(y, source)
    table = targets_table(p, source, y)
    return Job(
        p,
        y.name or p.stem,
        y.allow_duplicates,
        "yaml",
        source,
        y.defaults,
        y.targets,
        None if table is None else table.path,
        "" if table is None else table.rows_source,
        (*y.problems, *plan.problems, *verify_problems),
        y.ignore_columns,
        plan.plan,
        plan.start_at_line,
        y.steps,
        query=y.query,
        waits=y.waits,
        verify=verify,
        table=table,
    )

"""A ledger path with placeholders resumes its job's unfinished ledger before it makes a new one.

``--ledger 'ledgers/{job}-{date}.db'`` gives each occurrence of a recurring job its own ledger.
Filled again by a rerun (after a kill, or past midnight), the placeholders name another file:
making it would send the whole job again. So before a new ledger is made, the files matching the
pattern (each placeholder a wildcard of its shape) are read: an unfinished ledger of this job (the
same job file, or the same commands) is resumed; several are refused, each named, for the person
to pick one with ``--ledger PATH``. A finished one is an occurrence done: the next occurrence
gets a ledger of its own and sends the whole job again (said in a note), as a recurring job does.

May import: errors, times, ledger (occurrences), app.events.
"""

from __future__ import annotations

import glob
import re
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Final

from dispatcher.app.events import Events
from dispatcher.errors import FlagError, Refused
from dispatcher.ledger.address import LedgerAddress, PostgresAddress
from dispatcher.ledger.identity import default_ledger_path
from dispatcher.ledger.occurrences import Occurrence, occurrences
from dispatcher.ledger.opening import ledger_exists
from dispatcher.ledger.sqlite_files import side_file_of
from dispatcher.times import BEIJING

__all__ = [
    "PLACEHOLDERS",
    "earlier_ledgers",
    "job_ledger",
    "ledger_path_for",
    "ledger_to_resume",
    "resumable",
]

# What a ledger path may hold, for recurring jobs (each occurrence its own ledger): the start's
# date and time in OneNET's zone (UTC+8), and the job file's name without its suffix.
PLACEHOLDERS: Final = ("date", "time", "job")
_ANY_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_PLACEHOLDER: Final = re.compile(r"\{(" + "|".join(PLACEHOLDERS) + r")\}")
# What each placeholder is filled with (plan_options.ledger_path_for): the shape a match must have.
_SHAPES: Final = {"date": r"[0-9]{4}-[0-9]{2}-[0-9]{2}", "time": r"[0-9]{6}", "job": r"[^/]+"}


def earlier_ledgers(given: LedgerAddress, path: LedgerAddress) -> list[Occurrence]:
    """The ledgers (of any job) matching the placeholder path ``given``, ``path`` (its filling
    for this run) left out; none when ``given`` has no placeholder or ``path`` exists already (a
    rerun of the same occurrence resumes it as any ledger is resumed). In a PostgreSQL ledger,
    the jobs whose names match the placeholder name."""
    if isinstance(given, PostgresAddress) and isinstance(path, PostgresAddress):
        return _earlier_jobs(given, path)
    if isinstance(given, PostgresAddress) or isinstance(path, PostgresAddress):
        return []
    text = str(given)
    if not _PLACEHOLDER.search(text) or path.exists():
        return []
    this = path.resolve()
    found = sorted(
        Path(name)
        for name in glob.glob(_pattern(text, glob.escape, "*"))
        if _shape(text).fullmatch(name) and side_file_of(Path(name)) is None
        and Path(name).is_file()
    )  # fmt: skip
    return occurrences(p for p in found if p.resolve() != this)


def _earlier_jobs(given: PostgresAddress, path: PostgresAddress) -> list[Occurrence]:
    """The jobs of the database whose names match ``given``'s placeholder name, but ``path``'s."""
    from dispatcher.ledger.postgres_jobs import job_names  # psycopg only when used

    name = given.job or "{job}"
    if not _PLACEHOLDER.search(name) or ledger_exists(path):
        return []
    shape = _shape(name)
    matching = [n for n in job_names(given) if shape.fullmatch(n) and n != path.job]
    return occurrences(given.with_job(n) for n in matching)


def _pattern(text: str, escape: Callable[[str], str], wildcard: str) -> str:
    literals = _PLACEHOLDER.split(text)  # literal, name, literal, name, ..., literal
    return "".join(escape(p) if i % 2 == 0 else wildcard for i, p in enumerate(literals))


def _shape(text: str) -> re.Pattern[str]:
    """What a filling of ``text`` looks like: each placeholder a value of its shape."""
    literals = _PLACEHOLDER.split(text)
    return re.compile(
        "".join(re.escape(p) if i % 2 == 0 else _SHAPES[p] for i, p in enumerate(literals))
    )


def _this_job(
    found: Sequence[Occurrence], job_path: Path, fingerprint: str | None
) -> list[Occurrence]:
    """Those of ``found`` that are this job's: its file, or (once known) its commands."""
    where = str(job_path.resolve())
    return [
        o
        for o in found
        if o.job.path == where or (fingerprint and o.job.fingerprint == fingerprint)
    ]


def resumable(found: Sequence[Occurrence], job_path: Path) -> bool:
    """Whether an unfinished ledger of the job file is among ``found`` (its past times, then,
    are a resumed job's: warnings, not errors)."""
    return any(o.unfinished for o in _this_job(found, job_path, None))


def ledger_to_resume(
    found: Sequence[Occurrence],
    path: LedgerAddress,
    *,
    given: LedgerAddress,
    job_path: Path,
    fingerprint: str,
    events: Events,
) -> LedgerAddress:
    """The ledger this run uses: the job's one unfinished earlier ledger (said), else ``path``
    (a note when the job's last ledger is finished: the whole job goes out again); Refused when
    several are unfinished."""
    mine = _this_job(found, job_path, fingerprint)
    unfinished = [o for o in mine if o.unfinished]
    if len(unfinished) > 1:
        listed = "; ".join(f"{o.path} ({o.unfinished})" for o in unfinished)
        raise Refused(
            f"{len(unfinished)} unfinished ledgers of this job match {given}: {listed}. Resume"
            f" one with --ledger PATH (a new ledger, {path}, would send their commands again)"
        )
    if unfinished:
        (earlier,) = unfinished
        events.note(
            f"resuming {earlier.path}, an unfinished ledger of this job ({earlier.unfinished});"
            f" a new one ({path}) would send the whole job again"
        )
        return earlier.path
    if mine:
        last = max(mine, key=lambda o: (o.last_run_at, str(o.path)))
        events.note(
            f"{path}: a new ledger for this occurrence; the last one, {last.path}, is finished:"
            " every command of the job is sent again"
        )
    return path


def ledger_path_for(given: LedgerAddress, *, job_path: Path, start: datetime) -> LedgerAddress:
    """``given`` with its placeholders filled: {date} (YYYY-MM-DD) and {time} (HHMMSS) of the
    start in UTC+8, {job} (the job file's name without its suffix); FlagError for any
    other. A PostgreSQL ledger's are filled in its job's name, which is {job} when not given."""
    at = start.astimezone(BEIJING)
    values = {"date": at.strftime("%Y-%m-%d"), "time": at.strftime("%H%M%S"), "job": job_path.stem}

    def fill(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in values:
            known = ", ".join("{" + p + "}" for p in PLACEHOLDERS)
            raise FlagError(
                f"{{{name}}} is not a placeholder of a ledger path (there are {known})",
                "--ledger",
            )
        return values[name]

    if isinstance(given, PostgresAddress):
        return given.with_job(_ANY_PLACEHOLDER.sub(fill, given.job or "{job}"))
    return Path(_ANY_PLACEHOLDER.sub(fill, str(given)))


def job_ledger(job_path: Path, shared: str | None) -> LedgerAddress:
    """The ledger a job's run opens when none is named: the job's own in the PostgreSQL ledger
    ``shared`` (the config's ``ledger.url``: named as {job}), else the file beside the job."""
    if shared is None:
        return default_ledger_path(job_path)
    return PostgresAddress.parse(shared).with_job(job_path.stem)

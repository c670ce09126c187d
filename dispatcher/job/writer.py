"""Writing a job file (YAML or CSV) from commands, so that ``load_job`` reads back each field
exactly as written (times as the job gave them: ``+2d`` or absolute).

Every command is written in full (no defaults), in the order given. The reader takes every YAML
scalar as the text written, so values go through pyyaml's safe dumper, which quotes whatever YAML
would otherwise read as another type or another text (digits with leading zeros, ``yes``, ``~``,
quotes, line breaks); CSV cells go through the csv module. Commands are spooled first, so the
header (a YAML job's comment, name and ``allow_duplicates``) can count them, and the file appears
whole or not at all: a temporary file beside it, then a rename (a link when not overwriting, so a
file that appeared meanwhile is never replaced).

A job of steps (retry-failed's) is written as targets instead (``add_target``: an IMEI, where it
starts, ``from_step``, and the fields it gives), below the sections it shares with the job it
comes from (``defaults:``, ``steps:``...), given as YAML text to ``commit``.
"""

from __future__ import annotations

import contextlib
import csv
import os
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import yaml

from dispatcher.errors import JobFileError
from dispatcher.job.rows import FIELDS
from dispatcher.job.seen import SeenKeys
from dispatcher.model.command import Command

try:
    from yaml import CSafeDumper as _Dumper  # libyaml: the same output, many times faster
except ImportError:  # pragma: no cover - pyyaml built without libyaml
    from yaml import SafeDumper as _Dumper  # type: ignore[assignment]

__all__ = ["NOTE_COLUMN", "JobWriter", "Written", "job_format"]

NOTE_COLUMN = "# note"
"""A CSV job's column of notes: skipped by the reader, as every column named ``#...`` is."""

JobFormat = Literal["yaml", "csv"]
_FORMATS: dict[str, JobFormat] = {".yaml": "yaml", ".yml": "yaml", ".csv": "csv"}
_SPOOL = 8 << 20  # bytes of commands held in memory before the spool moves to a temporary file
_BATCH = 2000  # commands per duplicate check
_WIDTH = 1 << 16  # YAML line width: long args stay on one line


@dataclass(frozen=True, slots=True)
class Written:
    """A job file written: where, how many commands and devices, and whether copies repeat."""

    path: Path
    commands: int
    devices: int
    repeats: bool  # the same command more than once: a YAML job says allow_duplicates: true


def job_format(path: Path) -> JobFormat | None:
    """The format a job file's name asks for (``.yaml``, ``.yml``, ``.csv``), or None."""
    return _FORMATS.get(path.suffix.lower())


def _comment(text: str) -> str:
    """One comment line's text: anything that is not printable written as an escape."""
    return text if text.isprintable() else ascii(text)[1:-1]


def _cell(value: int | None) -> str | int:
    return "" if value is None else value


def _dump(data: Any) -> str:
    return yaml.dump(
        data,
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=False,
        width=_WIDTH,
    )


class JobWriter:
    """Writes one job file: ``add`` each command, then ``commit``; closed uncommitted, nothing.

    ``force``: write over an existing file; without it, a file found at ``path`` is refused.
    """

    def __init__(self, path: Path, *, force: bool = False) -> None:
        """ValueError for a name that is not .yaml, .yml or .csv."""
        found = job_format(path)
        if found is None:
            raise ValueError(f"{path}: name the job file .yaml, .yml or .csv")
        self.path = path
        self.format: JobFormat = found
        self.force = force
        self._body = tempfile.SpooledTemporaryFile(  # noqa: SIM115  # closed by close()
            _SPOOL, mode="w+", encoding="utf-8", newline=""
        )
        self._csv = csv.writer(self._body, lineterminator="\r\n")
        self._seen = SeenKeys()
        self._batch: list[tuple[int, int, int]] = []
        self._count = 0
        self._added = 0  # commands or targets added: each one's position
        self._repeats = False

    def __enter__(self) -> JobWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def count(self) -> int:
        """How many commands have been added."""
        return self._count

    def add(self, command: Command, notes: tuple[str, ...] = ()) -> None:
        """Write one command after those added before, ``notes`` above it (YAML) or in its
        NOTE_COLUMN cell (CSV)."""
        t = command
        mode = {1: "replace", 2: "partial"}.get(t.mode or 0)
        valid = None if t.valid_time is None else t.valid_time.text
        if self.format == "csv":
            args = "" if t.args is None or t.op != "execute" else t.args
            note = "; ".join(map(_comment, notes))
            res_id, value = t.res_id, ""
            if t.op == "write":
                if len(t.values) != 1:
                    raise ValueError("a CSV job writes one resource per row: name it .yaml")
                res_id, val = t.values[0].res_id, t.values[0].val
                value = str(val).lower() if isinstance(val, bool) else str(val)
            self._csv.writerow(
                [t.imei, t.obj_id, _cell(t.obj_inst_id), _cell(res_id), args,
                 "" if valid is None else valid, t.expired_time.text, t.retry, t.timeout,
                 t.trigger_msg, str(t.op), mode or "", value, t.product, note]
            )  # fmt: skip
        else:
            self._body.writelines(f"# {_comment(note)}\n" for note in notes)
            entry: dict[str, object] = {"imei": t.imei}
            if t.op != "execute":
                entry["op"] = str(t.op)
            entry["obj_id"] = t.obj_id
            if t.obj_inst_id is not None:
                entry["obj_inst_id"] = t.obj_inst_id
            if t.res_id is not None and t.op != "write":
                entry["res_id"] = t.res_id
            if mode is not None:
                entry["mode"] = mode
            if t.values:
                entry["values"] = {v.res_id: v.val for v in t.values}
            if t.args is not None and t.op == "execute":
                entry["args"] = t.args
            if valid is not None:
                entry["valid_time"] = valid
            entry.update(expired_time=t.expired_time.text, retry=t.retry, timeout=t.timeout)
            entry["trigger_msg"] = t.trigger_msg
            if t.product:
                entry["product"] = t.product
            self._body.write(_dump([entry]))
        # The same key the job's reader checks duplicates with: the device, then the rest.
        key = hash((t.op, t.obj_id, t.obj_inst_id, t.res_id, t.args, t.values, t.product))
        self._added_one(key, t.imei, 1)

    def add_target(
        self, imei: str, fields: Mapping[str, object], commands: int, notes: tuple[str, ...] = ()
    ) -> None:
        """Write one target of a job of steps (YAML only): ``imei``, then ``fields`` (e.g.
        ``from_step``, a field it gives instead of the steps), ``notes`` above it; it makes
        ``commands`` commands (for the count ``commit`` returns)."""
        if self.format != "yaml":
            raise ValueError("a job of steps is written as YAML: name it .yaml")
        self._body.writelines(f"# {_comment(note)}\n" for note in notes)
        self._body.write(_dump([{"imei": imei, **fields}]))
        self._added_one(hash("target"), imei, commands)  # a device twice: allow_duplicates

    def _added_one(self, key: int, imei: str, commands: int) -> None:
        self._batch.append((key, self._added, int(imei)))
        self._added += 1
        self._count += commands
        if len(self._batch) >= _BATCH:
            self._check_batch()

    def _check_batch(self) -> None:
        if self._batch and self._seen.add(self._batch) is not None:
            self._repeats = True
        self._batch = []

    def commit(
        self,
        *,
        name: str | None = None,
        comment: Iterable[str] = (),
        before_put: Callable[[], None] | None = None,
        sections: str = "",
        check: Callable[[Path], None] | None = None,
    ) -> Written:
        """Write the file: ``comment`` lines and the job's ``name`` first (YAML), then
        ``sections`` (YAML text: a job of steps' defaults, steps...), then the commands.

        ``check`` is given the whole file, on disk beside the path (named as a job file of the
        same format), and ``before_put`` is called after it, before the file is put in place:
        when either raises, nothing is put. JobFileError when it cannot be written, when
        ``path`` exists (without ``force``), or when a CSV job would repeat a command (only a YAML
        job can allow duplicates).
        """
        self._check_batch()
        source = str(self.path)
        if self._repeats and self.format == "csv":
            raise JobFileError(
                source, 0, "", "repeats a command, which a CSV job cannot: name it .yaml instead"
            )
        head = [f"# {_comment(line)}\n" for line in comment] if self.format == "yaml" else []
        if self.format == "csv":
            columns = [*FIELDS, "op", "mode", "value", "product", NOTE_COLUMN]
            head.append(",".join(columns) + "\r\n")
        else:
            if name is not None:
                head.append(_dump({"job": name}))
            head.append(sections)
            if self._repeats:
                head.append("allow_duplicates: true\n")
            head.append("targets:\n")
        suffix = self.path.suffix  # the temporary file reads as a job file of the same format
        temp = self.path.with_name(f".{self.path.stem}.{secrets.token_hex(4)}.tmp{suffix}")
        try:
            # Created as any new file is (the umask applies), never over another one.
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            try:
                with open(fd, "w", encoding="utf-8", newline="") as out:
                    out.writelines(head)
                    self._body.seek(0)
                    shutil.copyfileobj(self._body, out)
                    out.flush()
                    os.fsync(out.fileno())
                if check is not None:
                    check(temp)
                if before_put is not None:
                    before_put()
                self._put(temp, source)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    temp.unlink()
        except OSError as exc:
            raise JobFileError(source, 0, "", f"cannot be written: {exc.strerror or exc}") from exc
        return Written(self.path, self._count, self._seen.groups(), self._repeats)

    def _put(self, temp: Path, source: str) -> None:
        """Move the finished temporary file to the path: replacing (``force``) or not."""
        if self.force:
            os.replace(temp, self.path)
            return
        try:
            os.link(temp, self.path)  # fails if the path exists, with no window between
        except FileExistsError:
            raise JobFileError(source, 0, "", "exists: give --force to write over it") from None
        except OSError:  # a file system without hard links
            if self.path.exists():
                raise JobFileError(source, 0, "", "exists: give --force to write over it") from None
            os.replace(temp, self.path)

    def close(self) -> None:
        """Drop what was spooled (idempotent); a committed file stays."""
        self._body.close()
        self._seen.close()

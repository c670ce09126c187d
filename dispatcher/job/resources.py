"""What a job's resources are in the LwM2M registry: the distinct ones, and operations that fail.

A job executes, writes or reads ``obj_id/obj_inst_id/res_id``. What the registry defines decides
what a device answers (LwM2M TS Core, the device management interface): executing a resource
without E, writing one without W (read-only, or executable), or reading an execute-only one makes
it answer 4.05 METHOD_NOT_ALLOWED, so OneNET records the command as failed on delivery; a value
that does not fit the resource's type or range (the row's ``notes``, fields.py) is refused too.
Ids that are not in the registry are fine (vendor objects, private ranges).

Rows of a fleet share their checked values, so ``ResourceCheck.see`` runs once per distinct
command (operation, ids, values): a dict lookup. The first few commands of each problem are
reported at their line, the rest in one closing problem.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from dispatcher.job.rows import Checked, Problem
from dispatcher.lwm2m import describe, resource

__all__ = ["DISTINCT_CAP", "LISTED", "SHOWN", "Hits", "ResourceCheck"]

LISTED = 10  # distinct resources named in a validation summary
DISTINCT_CAP = 10_000  # distinct resources counted exactly (memory stays flat)
SHOWN = 3  # commands of one problem reported at their line

_REFUSED = "the device answer METHOD_NOT_ALLOWED"
Listed = tuple[str, int, int | None, int | None]  # op, obj_id, obj_inst_id, res_id


@dataclass(slots=True)
class Hits:
    """The commands of one problem: its text, and those beyond the SHOWN."""

    text: str  # what is wrong, and what the device does about it
    short: str  # what is wrong
    verb: str  # what the commands do: execute, write, read
    field: str
    count: int = 0
    first: tuple[str, int] = ("", 0)
    last: tuple[str, int] = ("", 0)
    shown: int = 0


class ResourceCheck:
    """Tracks a job's distinct resources and its operations the registry says cannot work."""

    def __init__(self, strict: bool = False) -> None:
        self.strict = strict
        self._found: dict[tuple[object, ...], tuple[Hits, ...]] = {}
        self._hits: dict[str, Hits] = {}  # one record per problem text
        self._distinct: dict[Listed, None] = {}  # insertion-ordered set
        self._by_tail: dict[bytes, tuple[Hits, ...]] = {}  # key_tail -> what see() found

    def see(self, item: Checked) -> tuple[Hits, ...]:
        """Note a command of the job; the records of what cannot work about it (often none).

        A row's key_tail holds its operation, ids and values (fields.py): what it finds is kept
        by it, so a fleet's repeated rows cost one dict lookup (the bytes' hash is cached)."""
        by_tail = self._by_tail
        found = by_tail.get(item.key_tail)
        if found is None:
            if len(by_tail) >= 4096:
                by_tail.clear()
            found = by_tail[item.key_tail] = self._see(item)
        return found

    def _see(self, item: Checked) -> tuple[Hits, ...]:
        op, obj_id, inst, res = item.op, item.obj_id, item.obj_inst_id, item.res_id
        written = _written(item) if op == "write" else ()
        if len(self._distinct) < DISTINCT_CAP:
            if op == "write" and res is None:
                for r in written:
                    self._distinct[op, obj_id, inst, r] = None
            else:
                self._distinct[op, obj_id, inst, res] = None
        key = (op, obj_id, res, written, item.notes)
        found = self._found.get(key)
        if found is None:
            field = "values" if op == "write" else "res_id"
            texts = [*_problems(op, obj_id, inst, res, written)]
            texts += ((note, note, "write") for note in item.notes)
            found = self._found[key] = tuple(
                self._hits.setdefault(text, Hits(text, short, verb, field))
                for text, short, verb in texts
            )
        return found

    def hit(self, hits: Hits, file: str, line: int) -> Problem | None:
        """One command with this problem: its problem, or None once SHOWN were."""
        if hits.shown < SHOWN:
            hits.shown += 1
            return Problem(file, line, hits.field, hits.text, warning=not self.strict)
        if not hits.count:
            hits.first = (file, line)
        hits.count += 1
        hits.last = (file, line)
        return None

    def closing(self) -> list[Problem]:
        """One problem per problem with more commands than were shown."""
        found = []
        for hits in self._hits.values():
            if not hits.count:
                continue
            (file, line), (last_file, last_line) = hits.first, hits.last
            to = f"line {last_line}" if last_file == file else f"{last_file}:{last_line}"
            noun = "command" if hits.count == 1 else "commands"
            message = f"{hits.short}; {hits.count:,} more {noun} {hits.verb} it, from here to {to}"
            found.append(Problem(file, line, hits.field, message, warning=not self.strict))
        return found

    def listed(self) -> tuple[tuple[Listed, ...], int]:
        """The first LISTED distinct resources (op, ids) in job order, and how many more there
        are (at least, once DISTINCT_CAP were counted)."""
        first = tuple(itertools.islice(self._distinct, LISTED))
        return first, len(self._distinct) - len(first)


def _written(item: Checked) -> tuple[int, ...]:
    """The resource ids a write's values name."""
    return tuple(v.res_id for v in item.values)


def _problems(
    op: str, obj_id: int, inst: int | None, res: int | None, written: tuple[int, ...]
) -> list[tuple[str, str, str]]:
    """What the registry says cannot work about one operation on these ids: (the whole text,
    the part that says what is wrong, the verb of its commands) each."""
    texts = []
    for res_id in written if op == "write" else (() if res is None else (res,)):
        found = resource(obj_id, res_id)
        if found is None:
            continue
        path, what = describe(obj_id, 0 if inst is None else inst, res_id).split(" ", 1)
        where = f"{path} is {what}"
        ops = found.operations
        kind = ""
        if op == "execute" and not found.executable:
            kind = "not executable"
        elif op == "write" and "W" not in ops:
            kind = "executable, not writable" if "E" in ops else "read-only"
        elif op == "read" and "R" not in ops:
            kind = "execute-only" if "E" in ops else "not readable"
        if kind:
            doing = {"execute": "executing", "write": "writing", "read": "reading"}[op]
            short = f"{where}: {kind}"
            texts.append((f"{short}; {doing} it makes {_REFUSED}", short, op))
    return texts

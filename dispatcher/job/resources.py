"""What a job's resources are in the LwM2M registry: the distinct ones, and executes that fail.

A job executes ``obj_id/obj_inst_id/res_id``; a resource the registry defines without E (a
readable or writable value) cannot be executed: the device answers 4.05 METHOD_NOT_ALLOWED
(LwM2M TS Core, the Execute operation), so OneNET records the command as failed on delivery. Ids
that are not in the registry are fine (vendor objects, private ranges).

Rows of a fleet share their checked values, so ``ResourceCheck.see`` runs once per distinct
(obj_id, res_id) pair: a dict lookup. The first few commands of a non-executable pair are
reported at their line, the rest in one closing problem.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from dispatcher.job.fields import Problem
from dispatcher.lwm2m import describe, resource

__all__ = ["DISTINCT_CAP", "LISTED", "SHOWN", "ResourceCheck"]

LISTED = 10  # distinct resources named in a validation summary
DISTINCT_CAP = 10_000  # distinct resources counted exactly (memory stays flat)
SHOWN = 3  # commands of one non-executable resource reported at their line


@dataclass(slots=True)
class _Hits:
    """The commands of one non-executable (obj_id, res_id) pair beyond the SHOWN."""

    text: str
    count: int = 0
    first: tuple[str, int] = ("", 0)
    last: tuple[str, int] = ("", 0)
    shown: int = 0


class ResourceCheck:
    """Tracks a job's distinct resources and its executes of resources that are not executable."""

    def __init__(self, strict: bool = False) -> None:
        self.strict = strict
        self._pairs: dict[tuple[int, int], _Hits | None] = {}
        self._distinct: dict[tuple[int, int, int], None] = {}  # insertion-ordered set

    def see(self, obj_id: int, obj_inst_id: int, res_id: int) -> _Hits | None:
        """Note a resource of the job; its record when executing it cannot work, else None."""
        if len(self._distinct) < DISTINCT_CAP:
            self._distinct[obj_id, obj_inst_id, res_id] = None
        pair = obj_id, res_id
        if pair in self._pairs:
            return self._pairs[pair]
        res = resource(obj_id, res_id)
        hits = None
        if res is not None and not res.executable:
            path, what = describe(obj_id, obj_inst_id, res_id).split(" ", 1)
            hits = _Hits(f"{path} is {what}")
        self._pairs[pair] = hits
        return hits

    def hit(self, hits: _Hits, file: str, line: int) -> Problem | None:
        """One command of a non-executable resource: its problem, or None once SHOWN were."""
        if hits.shown < SHOWN:
            hits.shown += 1
            message = (
                f"{hits.text}: not executable; executing it makes the device answer"
                " METHOD_NOT_ALLOWED"
            )
            return Problem(file, line, "res_id", message, warning=not self.strict)
        if not hits.count:
            hits.first = (file, line)
        hits.count += 1
        hits.last = (file, line)
        return None

    def closing(self) -> list[Problem]:
        """One problem per non-executable resource with more commands than were shown."""
        found = []
        for hits in self._pairs.values():
            if hits is None or not hits.count:
                continue
            (file, line), (last_file, last_line) = hits.first, hits.last
            to = f"line {last_line}" if last_file == file else f"{last_file}:{last_line}"
            noun = "command" if hits.count == 1 else "commands"
            message = (
                f"{hits.text}: not executable; {hits.count:,} more {noun} execute it, from here"
                f" to {to}"
            )
            found.append(Problem(file, line, "res_id", message, warning=not self.strict))
        return found

    def listed(self) -> tuple[tuple[tuple[int, int, int], ...], int]:
        """The first LISTED distinct resources in job order, and how many more there are (at
        least, once DISTINCT_CAP were counted)."""
        first = tuple(itertools.islice(self._distinct, LISTED))
        return first, len(self._distinct) - len(first)

"""What a retry job of steps takes from the job it comes from: the sections its steps are made of,
as written (``defaults:``, ``steps:`` with each step's keys, the command fields at the top, and any
other section of how a device is served), which steps wait for delivery, the fields a device gives
that the steps do not; and the check that the retry job gives each command as the job did.

Left out of the copy: what names the fleet (``targets:``, ``targets_csv:``, ``targets_xlsx:``,
``sheet:``, ``encoding:``, ``ignore_columns:``, ``targets_query:``), the job's name and
``allow_duplicates`` (the writer says them), and how the whole job was rolled out (``rollout:``,
``schedule:``), which was for the whole fleet, not for the devices that did not finish.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import yaml
from yaml.nodes import MappingNode

from dispatcher.errors import JobFileError
from dispatcher.job.entries import Entry, node_key
from dispatcher.job.model import Job, load_job
from dispatcher.job.planfile import read_plan
from dispatcher.job.rows import IMEI, NAMES
from dispatcher.job.yamlfile import read_root, read_yaml
from dispatcher.model.command import Command, command_fingerprint

try:
    from yaml import CSafeDumper as _Dumper
except ImportError:  # pragma: no cover - pyyaml built without libyaml
    from yaml import SafeDumper as _Dumper  # type: ignore[assignment]

__all__ = ["DROPPED", "TARGET_FIELDS", "StepsSource", "check_written", "read_steps_source"]

DROPPED: Final = (
    "job",
    "allow_duplicates",
    "targets",
    "targets_csv",
    "targets_xlsx",
    "sheet",
    "encoding",
    "ignore_columns",
    "targets_query",
    "rollout",
    "schedule",
)
"""The top-level keys of a job of steps that its retry job does not copy."""
TARGET_FIELDS: Final = ("valid_time", "expired_time", "retry", "timeout", "trigger_msg", "product")
"""The fields a target of a job with steps may give (the steps say what is done)."""
_WIDTH = 1 << 16


@dataclass(frozen=True, slots=True)
class StepsSource:
    """The job a retry job of steps comes from: its name, its sections as YAML text, whether
    each step waits for delivery, and what each step gives a target that gives nothing of its
    own."""

    name: str  # the job's
    sections: str
    waits: tuple[bool, ...]
    plain: Mapping[int, Command]  # by step; a step missing: it cannot do without a target's field

    def target_fields(self, commands: Sequence[Command]) -> dict[str, object]:
        """The fields a target gives so that the steps make ``commands`` (a device's, in step
        order); ValueError when no target can (the job's steps have been edited since)."""
        fields: dict[str, object] = {}
        for name in TARGET_FIELDS:
            mine = [_field(c, name) for c in commands]
            if all(
                c.step in self.plain and _field(self.plain[c.step], name) == value
                for c, value in zip(commands, mine, strict=True)
            ):
                continue
            if len(set(mine)) != 1 or mine[0] is None or mine[0] == "":
                raise ValueError(
                    f"its steps give {name} as {', '.join(map(str, mine))}, which neither the"
                    " steps of the job file nor one target's field make (was the job file"
                    " edited since?)"
                )
            fields[name] = mine[0]
        return fields


def _field(command: Command, name: str) -> object:
    """A target field of a command, as a job file writes it (a time as given)."""
    value = getattr(command, name)
    if name in ("valid_time", "expired_time"):
        return None if value is None else value.text
    return value


def read_steps_source(path: Path, imei: str) -> StepsSource:
    """The parts of the job of steps at ``path`` a retry job copies (``imei``: a device of the
    job, to work out what the steps give); JobFileError when it cannot be read or has no steps."""
    source = str(path)
    y = read_yaml(path, source)
    if not y.steps:
        raise JobFileError(source, 0, "steps", "the job file has no steps: any more")
    root = read_root(path, source)
    assert isinstance(root, MappingNode)  # read_yaml refused anything else
    kept = [(k, v) for k, v in root.value if node_key(k) not in DROPPED]
    sections = ""
    if kept:
        node = MappingNode("tag:yaml.org,2002:map", kept)
        sections = yaml.serialize(node, Dumper=_Dumper, allow_unicode=True, width=_WIDTH)
    # Each step's wait, resolved as the job's reader resolves it (the step's own, or the
    # defaults'): whether the step is done only once delivered.
    waits = tuple(wait.until == "delivered" for wait in y.waits)
    if len(waits) != len(y.steps):
        waits = (False,) * len(y.steps)  # wait: was refused: the job would not validate
    values: list[str | None] = [None] * len(NAMES)
    values[IMEI] = imei
    target = Entry(y.steps_line, tuple(values), (y.steps_line,) * len(NAMES))
    plan = read_plan(y.sections, source).plan
    name = y.name or path.stem
    job = Job(
        path, name, False, "yaml", source, y.defaults, (target,), plan=plan, steps=y.steps,
        waits=y.waits,
    )  # fmt: skip
    plain = {item.step: item for item in job.scan(past_times="allow") if isinstance(item, Command)}
    return StepsSource(name, sections, waits, plain)


def check_written(path: Path, expected: Mapping[str, int]) -> None:
    """The job of steps at ``path`` makes exactly the commands ``expected`` (key: fingerprint
    share, occurrence 0), each with every field as the job gave it; ValueError saying the first
    difference."""
    found = 0
    for item in load_job(path).scan(past_times="allow"):
        if not isinstance(item, Command):
            if not item.warning:
                raise ValueError(f"it would not validate: {item}")
            continue
        found += 1
        share = expected.get(item.key)
        if share is None:
            raise ValueError(f"step {item.step} of {item.imei} is not one the ledger holds")
        if command_fingerprint(item) != share:
            raise ValueError(
                f"step {item.step} of {item.imei} would not be sent as the job gave it (was the"
                " job file edited since?)"
            )
    if found != len(expected):
        raise ValueError(f"it makes {found:,} commands, not the {len(expected):,} handed over")

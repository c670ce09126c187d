"""Reading job files safely: YAML into nodes with line numbers here, CSV rows in csvfile.py.

Everything that can go wrong with the bytes (a missing file, undecodable text, a huge line, a YAML
syntax error or alias bomb, a ragged CSV) becomes a one-line ``JobFileError``, naming UTF-16 or
GBK when a YAML file is that (a YAML job is UTF-8; a CSV's encoding is found by encodings.py); the
field rules live in fields.py.

A CSV's (or a sheet's) header row names its columns. Columns left unnamed are skipped; so are
those whose name starts with ``#`` (notes kept beside the fleet), those a YAML job's
``ignore_columns:`` lists for its targets_csv or targets_xlsx, and those ``--ignore-column``
names for a CSV or .xlsx job file. A YAML job's ``encoding:`` forces its targets_csv's encoding,
``sheet:`` names the sheet of its targets_xlsx. An Excel ``sep=,`` line before the header is
skipped; one naming another separator is an error.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from dispatcher.errors import JobFileError
from dispatcher.job.encodings import encoding_problem
from dispatcher.job.entries import Entry, entry, names, node_key, node_line, node_text
from dispatcher.job.hints import not_utf8_problem, unencodable, utf16_problem
from dispatcher.job.query import TargetsQuery, read_query
from dispatcher.job.rows import NAMES, SLOT, Problem
from dispatcher.job.steps import starts_checked, step_products
from dispatcher.job.values import suggest
from dispatcher.job.waits import WAIT_KEYS, Wait, resolve_waits

__all__ = [
    "HEAD",
    "MAX_LINE",
    "PLAN_KEYS",
    "SHEET_SUFFIXES",
    "VERIFY_KEY",
    "YamlJob",
    "open_error",
    "read_root",
    "read_yaml",
]

MAX_LINE = 1 << 20  # bytes in one physical line: longer is not a job file
MAX_YAML = 32 << 20  # bytes of a YAML job: a bigger fleet belongs in targets_csv
PLAN_KEYS = ("rollout", "schedule", "window")  # how the job is sent: read by planfile.py
VERIFY_KEY = "verify"  # what a device on target reads: read by verifyspec.py
# The job's own keys; a command field (NAMES) there is a default of every target.
TOP_KEYS = (
    "job",
    "defaults",
    "targets",
    "targets_csv",
    "targets_xlsx",
    "sheet",
    "encoding",
    "targets_query",
    "steps",
    "allow_duplicates",
    "ignore_columns",
    *PLAN_KEYS,
    VERIFY_KEY,
)
HEAD = 1 << 16  # bytes of a file's start looked at to name its encoding
SHEET_SUFFIXES = (".xlsx",)  # file names read as a workbook (xlsxfile.py); any other as a CSV
_BOM = b"\xef\xbb\xbf"
_TRUE, _FALSE = ("true", "yes", "on", "y"), ("false", "no", "off", "n")


@dataclass(frozen=True, slots=True)
class YamlJob:
    """The parts of a YAML job file."""

    name: str | None
    allow_duplicates: bool
    defaults: Entry
    targets: tuple[Entry, ...]
    targets_csv: tuple[str, int, str] | None  # as written, its line, and its key (or _xlsx)
    problems: tuple[Problem, ...]
    ignore_columns: tuple[str, ...] = ()  # of targets_csv, lowercase
    sections: tuple[tuple[str, Node, int], ...] = ()  # PLAN_KEYS and verify: value, line of key
    steps: tuple[Entry, ...] = ()  # the operations sent to every device in turn (steps:)
    steps_line: int = 0
    query: TargetsQuery | None = None  # targets_query: (resolved at run time)
    waits: tuple[Wait, ...] = ()  # each step's: what the step after it waits for
    encoding: str | None = None  # of targets_csv (None: found, encodings.py)
    sheet: str | None = None  # of targets_xlsx (None: the first)
    sheet_line: int = 0


class _Loader(yaml.SafeLoader):
    """A safe loader that refuses aliases: a few lines of them can expand to gigabytes."""

    def compose_node(self, parent: Node | None, index: object) -> Node | None:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
            raise JobFileError(
                str(self.name),
                mark.line + 1,
                "",
                "YAML aliases (*name) are not allowed: write the values out, or use defaults:",
            )
        return super().compose_node(parent, index)  # type: ignore[arg-type]


def open_error(source: str, exc: OSError) -> JobFileError:
    """A one-line JobFileError for a file that cannot be opened or read."""
    if isinstance(exc, FileNotFoundError):
        return JobFileError(source, 0, "", "no such file")
    if isinstance(exc, IsADirectoryError):
        return JobFileError(source, 0, "", "is a directory, not a job file")
    if isinstance(exc, PermissionError):
        return JobFileError(source, 0, "", "permission denied")
    return JobFileError(source, 0, "", f"cannot be read: {exc.strerror or exc}")


def read_yaml(path: Path, source: str) -> YamlJob:
    """Parse a YAML job file into its parts; JobFileError if it is not a readable job file."""
    return _yaml_job(read_root(path, source), source)


def read_root(path: Path, source: str) -> Node:
    """A YAML job file's root node, as written; JobFileError if it is not readable YAML."""
    try:
        with path.open("rb") as f:
            data = f.read(MAX_YAML + 1)
    except OSError as exc:
        raise open_error(source, exc) from exc
    if len(data) > MAX_YAML:
        raise JobFileError(source, 0, "", f"is over {MAX_YAML >> 20} MB: list the devices in a CSV")
    text = _decode(data.removeprefix(_BOM), source)
    if not text.strip():
        raise JobFileError(source, 1, "", "the file is empty")
    loader: _Loader | None = None
    try:
        loader = _Loader(text)
        loader.name = source
        root = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 0
        raise JobFileError(source, line, "", f"not valid YAML: {exc.problem or exc}") from None
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        message = f"not valid YAML: character U+{exc.character:04X} is not allowed"
        if exc.character == 0 and (utf16 := utf16_problem(data[:HEAD])):
            line, message = 1, utf16
        raise JobFileError(source, line, "", message) from None
    except yaml.YAMLError as exc:
        raise JobFileError(source, 0, "", f"not valid YAML: {exc}") from None
    except RecursionError:
        raise JobFileError(source, 0, "", "not a job file: YAML nested too deeply") from None
    finally:
        if loader is not None:
            loader.dispose()
    if root is None:
        raise JobFileError(source, 1, "", "the file is empty")
    return root


def _decode(data: bytes, source: str) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        if message := utf16_problem(data[:HEAD]):
            raise JobFileError(source, 1, "", message) from None
        line = data.count(b"\n", 0, exc.start) + 1
        start = data.rfind(b"\n", 0, exc.start) + 1
        end = data.find(b"\n", exc.start)
        bad = data[start : len(data) if end < 0 else end]
        raise JobFileError(source, line, "", not_utf8_problem(data[:HEAD], bad)) from None
    for number, line_text in enumerate(text.split("\n"), 1):
        if len(line_text) > MAX_LINE:
            raise JobFileError(source, number, "", f"line is longer than {MAX_LINE} characters")
    return text


def _yaml_job(root: Node, source: str) -> YamlJob:
    if not isinstance(root, MappingNode):
        raise JobFileError(
            source, node_line(root), "", "must be a mapping with targets: or targets_csv:"
        )
    name: str | None = None
    allow = False
    defaults = Entry(0, (None,) * len(NAMES), (0,) * len(NAMES))
    targets: list[Entry] = []
    targets_csv: tuple[str, int, str] | None = None
    ignore: tuple[str, ...] = ()
    encoding: str | None = None
    sheet: str | None = None
    misplaced = False  # targets: given, but not as a list
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    sections: list[tuple[str, Node, int]] = []
    steps: list[Entry] = []
    query: TargetsQuery | None = None
    top: list[tuple[Node, Node]] = []  # command fields (product: ...): defaults of every target
    for knode, vnode in root.value:
        key = node_key(knode)
        line, vline = node_line(knode), node_line(vnode)
        if key in seen:
            problems.append(Problem(source, line, key, f"given twice (first on line {seen[key]})"))
            continue
        seen[key] = line
        text = node_text(vnode)
        if key == "job":
            if text is None or not isinstance(vnode, ScalarNode):
                problems.append(Problem(source, vline, key, "must be a name (text)"))
            elif bad := unencodable(text):
                problems.append(Problem(source, vline, key, bad))
            else:
                name = text
        elif key == "allow_duplicates":
            if text is not None and text.lower() in _TRUE + _FALSE:
                allow = text.lower() in _TRUE
            else:
                problems.append(Problem(source, vline, key, "must be true or false"))
        elif key in ("targets_csv", "targets_xlsx"):
            targets_csv = _table(key, text, vnode, targets_csv, source)
        elif key in ("encoding", "sheet"):
            if not text or not isinstance(vnode, ScalarNode):
                what = "an encoding's name (gb18030, gbk, utf-8, ...)" if key == "encoding" else (
                    "a sheet's name"
                )  # fmt: skip
                problems.append(Problem(source, vline, key, f"must be {what}"))
            elif key == "sheet":
                sheet = text
            elif bad := encoding_problem(text):
                problems.append(Problem(source, vline, key, bad))
            else:
                encoding = text
        elif key == "targets_query":
            query = read_query(vnode, line, source, problems)
        elif key == "ignore_columns":
            ignore = names(vnode, source, problems)
        elif key in PLAN_KEYS or key == VERIFY_KEY:
            sections.append((key, vnode, line))
        elif key == "steps":
            if not isinstance(vnode, SequenceNode) or not vnode.value:
                raise JobFileError(
                    source, vline, key, "must be a list of operations (- {op: write, ...})"
                )
            steps = [entry(item, source, is_defaults=True, what="step") for item in vnode.value]
            for step in steps:
                problems.extend(step.problems)
        elif key == "defaults":
            if not isinstance(vnode, MappingNode):
                raise JobFileError(source, vline, key, "must be a mapping of field: value")
            defaults = entry(vnode, source, is_defaults=True)
            problems.extend(defaults.problems)
        elif key == "targets":
            if isinstance(vnode, SequenceNode):
                targets = [entry(item, source) for item in vnode.value]
            elif isinstance(vnode, MappingNode):  # a target written without its "- "
                message = "must be a list, not a mapping: start each target with '- ' (- imei: ...)"
                problems.append(Problem(source, vline, key, message))
                misplaced = True
            elif text is not None:
                raise JobFileError(source, vline, key, "must be a list of targets (- imei: ...)")
        elif key in SLOT:
            top.append((knode, vnode))
        elif key in WAIT_KEYS:
            message = (
                "belongs to a step (what the next step waits for), or to defaults: of a job"
                " with steps:, not at the top of the job"
            )
            problems.append(Problem(source, line, key, message))
        else:
            hint = suggest(key, (*TOP_KEYS, *NAMES))
            problems.append(Problem(source, line, key or "?", f"unknown field{hint}"))
    if top:
        defaults = _with_top(defaults, top, source, problems)
    targets = [starts_checked(target, len(steps), source) for target in targets]
    problems.extend(step_products(defaults, steps, source))
    waits, found = resolve_waits(defaults.wait, [step.wait for step in steps], source)
    problems.extend(found)
    if not targets and targets_csv is None and query is None and not misplaced:
        message = "no targets: list them, name a targets_csv, or give a targets_query"
        raise JobFileError(source, 1, "targets", message)
    if ignore and targets_csv is None:
        message = "applies to the columns of targets_csv or targets_xlsx, and there is none"
        problems.append(Problem(source, seen["ignore_columns"], "ignore_columns", message))
    table_key = "" if targets_csv is None else targets_csv[2]
    for key, needs in (("encoding", "targets_csv"), ("sheet", "targets_xlsx")):
        if key in seen and table_key != needs:
            message = f"applies to {needs}, and there is none"
            problems.append(Problem(source, seen[key], key, message))
    return YamlJob(
        name,
        allow,
        defaults,
        tuple(targets),
        targets_csv,
        tuple(problems),
        ignore,
        tuple(sections),
        tuple(steps),
        seen.get("steps", 0),
        query,
        waits,
        encoding if table_key == "targets_csv" else None,
        sheet if table_key == "targets_xlsx" else None,
        seen.get("sheet", 0),
    )


def _table(
    key: str, text: str | None, node: Node, given: tuple[str, int, str] | None, source: str
) -> tuple[str, int, str]:
    """A targets_csv: or targets_xlsx: as written, its line and key; JobFileError if wrong."""
    line = node_line(node)
    what = "a CSV file" if key == "targets_csv" else "an .xlsx workbook"
    if not text or not isinstance(node, ScalarNode):
        raise JobFileError(source, line, key, f"must be the path of {what}")
    if bad := unencodable(text):
        raise JobFileError(source, line, key, bad)
    if given is not None:
        message = f"give targets_csv or targets_xlsx, not both (the other is on line {given[1]})"
        raise JobFileError(source, line, key, message)
    sheet = text.lower().endswith(SHEET_SUFFIXES)
    if sheet != (key == "targets_xlsx"):
        message = (
            "names a workbook: give it as targets_xlsx (sheet: names the sheet)"
            if sheet
            else "names no .xlsx workbook: give a CSV as targets_csv"
        )
        raise JobFileError(source, line, key, message)
    return text, line, key


def _with_top(
    defaults: Entry, top: list[tuple[Node, Node]], source: str, problems: list[Problem]
) -> Entry:
    """``defaults`` with the command fields written at the top of the job (``op: write`` and its
    ``values:``, say), read as defaults are; one written in both places with another value is an
    error at the default."""
    node = MappingNode("tag:yaml.org,2002:map", top, top[0][0].start_mark, top[-1][1].end_mark)
    given = entry(node, source, is_defaults=True, what="top")
    problems.extend(given.problems)
    values, lines = list(defaults.values), list(defaults.lines)
    refused = list(defaults.refused)
    for slot, value in enumerate(given.values):
        if value is None and slot not in given.refused:
            continue  # not written at the top
        if defaults.values[slot] is not None or slot in defaults.refused:
            if defaults.values[slot] != value or value is None:
                where = f"first on line {given.lines[slot]}, at the top of the job"
                message = f"given twice, with another value ({where})"
                problems.append(Problem(source, defaults.lines[slot], NAMES[slot], message))
            continue
        values[slot], lines[slot] = value, given.lines[slot]
        if slot in given.refused:
            refused.append(slot)
    return replace(defaults, values=tuple(values), lines=tuple(lines), refused=tuple(refused))

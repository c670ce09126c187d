"""Reading job files safely: YAML into nodes with line numbers, CSV as a stream of rows.

Everything that can go wrong with the bytes (a missing file, undecodable text, a huge line, a YAML
syntax error or alias bomb, a ragged CSV) becomes a one-line ``JobFileError``; the field rules live
in jobfields.py.
"""

from __future__ import annotations

import csv
import functools
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from .errors import JobFileError
from .jobfields import IMEI, NAMES, SLOT, TRIGGER, TRIGGER_MSG, Problem, suggest

__all__ = ["CsvHeader", "Entry", "YamlJob", "csv_header", "csv_rows", "open_error", "read_yaml"]

MAX_LINE = 1 << 20  # bytes in one physical line: longer is not a job file
MAX_YAML = 32 << 20  # bytes of a YAML job: a bigger fleet belongs in targets_csv
TOP_KEYS = ("job", "defaults", "targets", "targets_csv", "allow_duplicates")
_BOM = b"\xef\xbb\xbf"
_NULL = "tag:yaml.org,2002:null"
_TRUE, _FALSE = ("true", "yes", "on", "y"), ("false", "no", "off", "n")


@dataclass(frozen=True, slots=True)
class Entry:
    """One target (or the defaults) as written: a text per field slot, and where each is."""

    line: int
    values: tuple[str | None, ...]
    lines: tuple[int, ...]
    problems: tuple[Problem, ...] = ()
    broken: bool = False  # a structural problem was reported: never a command


@dataclass(frozen=True, slots=True)
class YamlJob:
    """The parts of a YAML job file."""

    name: str | None
    allow_duplicates: bool
    defaults: Entry
    targets: tuple[Entry, ...]
    targets_csv: tuple[str, int] | None  # as written, and its line
    problems: tuple[Problem, ...]


@dataclass(frozen=True, slots=True)
class CsvHeader:
    """A CSV header row: the column of each field slot (None: absent), and its problems."""

    line: int
    columns: tuple[int | None, ...]
    width: int
    problems: tuple[Problem, ...]


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
    return _yaml_job(root, source)


def _decode(data: bytes, source: str) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise JobFileError(source, line, "", "is not UTF-8 text: save it as UTF-8") from None
    for number, line_text in enumerate(text.split("\n"), 1):
        if len(line_text) > MAX_LINE:
            raise JobFileError(source, number, "", f"line is longer than {MAX_LINE} characters")
    return text


def _line(node: Node) -> int:
    return int(node.start_mark.line) + 1


def _yaml_job(root: Node, source: str) -> YamlJob:
    if not isinstance(root, MappingNode):
        raise JobFileError(
            source, _line(root), "", "must be a mapping with targets: or targets_csv:"
        )
    name: str | None = None
    allow = False
    defaults = Entry(0, (None,) * len(NAMES), (0,) * len(NAMES))
    targets: list[Entry] = []
    targets_csv: tuple[str, int] | None = None
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    for knode, vnode in root.value:
        key = knode.value.strip() if isinstance(knode, ScalarNode) else ""
        line, vline = _line(knode), _line(vnode)
        if key in seen:
            problems.append(Problem(source, line, key, f"given twice (first on line {seen[key]})"))
            continue
        seen[key] = line
        text = _scalar(vnode)
        if key == "job":
            if text is None or not isinstance(vnode, ScalarNode):
                problems.append(Problem(source, vline, key, "must be a name (text)"))
            else:
                name = text
        elif key == "allow_duplicates":
            if text is not None and text.lower() in _TRUE + _FALSE:
                allow = text.lower() in _TRUE
            else:
                problems.append(Problem(source, vline, key, "must be true or false"))
        elif key == "targets_csv":
            if not text or not isinstance(vnode, ScalarNode):
                raise JobFileError(source, vline, key, "must be the path of a CSV file")
            targets_csv = (text, vline)
        elif key == "defaults":
            if not isinstance(vnode, MappingNode):
                raise JobFileError(source, vline, key, "must be a mapping of field: value")
            defaults = _entry(vnode, source, is_defaults=True)
            problems.extend(defaults.problems)
        elif key == "targets":
            if isinstance(vnode, SequenceNode):
                targets = [_entry(item, source) for item in vnode.value]
            elif text is not None:
                raise JobFileError(source, vline, key, "must be a list of targets (- imei: ...)")
        else:
            hint = suggest(key, TOP_KEYS)
            if key in SLOT:
                hint = " (command fields go under defaults: or in each target)"
            problems.append(Problem(source, line, key or "?", f"unknown field{hint}"))
    if not targets and targets_csv is None:
        raise JobFileError(source, 1, "targets", "no targets: list them or name a targets_csv")
    return YamlJob(name, allow, defaults, tuple(targets), targets_csv, tuple(problems))


def _scalar(node: Node) -> str | None:
    if isinstance(node, ScalarNode):
        if node.tag == _NULL and not node.style:
            return None
        return str(node.value)
    return None


def _entry(node: Node, source: str, *, is_defaults: bool = False) -> Entry:
    line = _line(node)
    values: list[str | None] = [None] * len(NAMES)
    lines = [line] * len(NAMES)
    if isinstance(node, ScalarNode) and not is_defaults:  # a bare IMEI
        values[IMEI] = _scalar(node)
        return Entry(line, tuple(values), tuple(lines))
    if not isinstance(node, MappingNode):
        problem = Problem(source, line, "targets", "each target must be a mapping (imei: ...)")
        return Entry(line, tuple(values), tuple(lines), (problem,), broken=True)
    problems: list[Problem] = []
    first: dict[str, int] = {}
    for knode, vnode in node.value:
        kline, vline = _line(knode), _line(vnode)
        name = knode.value.strip() if isinstance(knode, ScalarNode) else ""
        slot = SLOT.get(name)
        if slot is None:
            problems.append(
                Problem(source, kline, name or "?", f"unknown field{suggest(name, NAMES)}")
            )
        elif name in first:
            problems.append(
                Problem(source, kline, name, f"given twice (first on line {first[name]})")
            )
        elif is_defaults and slot == IMEI:
            problems.append(Problem(source, kline, name, "belongs in each target, not in defaults"))
        else:
            first[name] = kline
            if isinstance(vnode, ScalarNode):
                values[slot], lines[slot] = _scalar(vnode), vline
            elif slot == TRIGGER and isinstance(vnode, SequenceNode):
                items = [_scalar(item) or "?" for item in vnode.value]
                values[slot], lines[slot] = ",".join(items) or "[]", vline
            else:
                kind = "list" if isinstance(vnode, SequenceNode) else "mapping"
                problems.append(
                    Problem(source, vline, name, f"must be a single value, not a {kind}")
                )
    broken = any(not p.warning for p in problems) and not is_defaults
    return Entry(line, tuple(values), tuple(lines), tuple(problems), broken)


def _undecodable_line(path: Path) -> int:
    """The number of the first line that is not UTF-8 (the error path only)."""
    with path.open("rb") as f:
        for number, raw in enumerate(iter(functools.partial(f.readline, MAX_LINE), b""), 1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                return number
    return 0


def csv_rows(path: Path, source: str) -> Generator[tuple[int, list[str]], None, None]:
    """Every non-blank row of a CSV file with the file line it starts on, streamed.

    Lines are read at most MAX_LINE characters at a time (in C, for speed): a longer line comes
    apart into pieces whose fields break the field limit or the row width, and so is reported.
    """
    try:
        f = path.open(encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise open_error(source, exc) from exc
    with f:
        reader = csv.reader(iter(functools.partial(f.readline, MAX_LINE), ""), strict=True)
        previous = 0
        try:
            for row in reader:
                if row and (row[0] or any(row)):
                    yield previous + 1, row
                previous = reader.line_num
        except csv.Error as exc:
            message = str(exc)
            if "field limit" in message:
                message = f"a line or field is longer than {csv.field_size_limit()} characters"
            raise JobFileError(source, previous + 1, "", f"not valid CSV: {message}") from None
        except UnicodeDecodeError:
            line = _undecodable_line(path) or previous + 1
            raise JobFileError(source, line, "", "is not UTF-8 text: save it as UTF-8") from None
        except OSError as exc:
            raise open_error(source, exc) from exc


def csv_header(row: list[str], line: int, source: str) -> CsvHeader:
    """Map a header row's names onto field slots; JobFileError without an imei column."""
    columns: list[int | None] = [None] * len(NAMES)
    problems: list[Problem] = []
    for index, cell in enumerate(row):
        name = cell.strip().lower()
        slot = SLOT.get(name)
        if not name:
            continue  # spreadsheets add unnamed empty columns
        if slot is None:
            problems.append(Problem(source, line, name, f"unknown column{suggest(name, NAMES)}"))
        elif columns[slot] is not None:
            problems.append(Problem(source, line, name, "column given twice"))
        else:
            columns[slot] = index
    if columns[IMEI] is None:
        hint = ""
        if len(row) == 1 and (";" in row[0] or "\t" in row[0]):
            hint = " (fields must be separated by commas)"
        raise JobFileError(source, line, "imei", f"no imei column in the header row{hint}")
    if columns[TRIGGER] is not None and columns[TRIGGER_MSG] is not None:
        problems.append(Problem(source, line, "trigger", "give trigger or trigger_msg, not both"))
        columns[TRIGGER] = None
    return CsvHeader(line, tuple(columns), len(row), tuple(problems))

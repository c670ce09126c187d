"""Build dispatcher/lwm2m/registry.json.gz and LICENSES.txt from the OMA LwM2M registry's DDF files.

    python scripts/build_lwm2m_registry.py [REGISTRY_DIR]   # default: ../shared/lwm2m-registry

Reads every ``<id>.xml`` object definition (not the ``DDF.xml`` index) with xml.etree and writes
a compact table: gzip'd JSON of arrays, about a tenth of the XML's size, read once by
dispatcher.lwm2m (the wheel needs no XML). The output is reproducible (sorted, gzip mtime 0), so
it is committed and a rebuild shows only real changes. Each file's licence notice (its first XML
comment; for OMA's long headers, the text under LEGAL DISCLAIMER) is kept in LICENSES.txt with
the objects it covers.

Oddities are notes on stdout, never a crash: a file that is not XML or has no object is skipped;
an object id or resource id that is not an integer is skipped; two files for the same object id
keep the newest ObjectVersion; a missing field is empty.
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_SOURCE = HERE.parent.parent / "shared" / "lwm2m-registry"
OUT = HERE.parent / "dispatcher" / "lwm2m"
FORMAT = 1  # the table's layout (dispatcher/lwm2m/registry.py reads it)
_OPERATIONS = ("R", "W", "RW", "E", "")
_COMMENT = re.compile(r"<!--(.*?)-->", re.S)
_ROOT = re.compile(r"<LWM2M\b")


def _text(element: ET.Element, tag: str) -> str:
    return (element.findtext(tag) or "").strip()


def _version(text: str) -> tuple[int, ...]:
    """'1.2' -> (1, 2); anything unreadable sorts first."""
    parts = re.findall(r"\d+", text)
    return tuple(int(p) for p in parts) if parts else (-1,)


def _notice(raw: str) -> str:
    """The licence notice of a file: its first comment before the root element, tidied."""
    head = _ROOT.split(raw, maxsplit=1)[0]
    match = _COMMENT.search(head)
    if match is None:
        return ""
    text = match.group(1)
    if "LEGAL DISCLAIMER" in text:  # OMA's header: file and normative information, then this
        text = text.split("LEGAL DISCLAIMER", 1)[1]
    lines = [line.strip() for line in text.strip("\n").splitlines()]
    tidy = "\n".join(lines).strip()
    return re.sub(r"\n{3,}", "\n\n", tidy)


def _resource(item: ET.Element, where: str, note: Callable[[str], None]) -> list[object] | None:
    rid = (item.get("ID") or "").strip()
    if not rid.isdigit():
        note(f"{where}: resource ID {rid!r} is not an integer: skipped")
        return None
    operations = _text(item, "Operations").upper()
    if operations not in _OPERATIONS:
        note(f"{where}/{rid}: operations {operations!r} kept as written")
    return [
        int(rid),
        _text(item, "Name"),
        operations,
        _text(item, "Type"),
        _text(item, "RangeEnumeration"),
        _text(item, "Units"),
        _text(item, "MultipleInstances").lower() == "multiple",
        _text(item, "Mandatory").lower() == "mandatory",
    ]


def read_object(path: Path, note: Callable[[str], None]) -> tuple[list[object], str, str] | None:
    """One DDF file: the object's row, its version and its licence notice (None: skipped)."""
    raw = path.read_text(encoding="utf-8", errors="replace")
    try:
        root = ET.fromstring(raw.encode("utf-8"))
    except ET.ParseError as exc:
        note(f"{path.name}: not well-formed XML ({exc}): skipped")
        return None
    obj = root.find("Object")
    if obj is None:
        note(f"{path.name}: no <Object>: skipped")
        return None
    oid = _text(obj, "ObjectID")
    if not oid.isdigit():
        note(f"{path.name}: ObjectID {oid!r} is not an integer: skipped")
        return None
    resources: dict[int, list[object]] = {}
    items = obj.find("Resources")
    for item in [] if items is None else items.findall("Item"):
        row = _resource(item, f"{path.name}: {oid}", note)
        if row is None:
            continue
        rid = row[0]
        assert isinstance(rid, int)
        if rid in resources:
            note(f"{path.name}: resource {oid}/{rid} given twice: the first kept")
            continue
        resources[rid] = row
    name = _text(obj, "Name")
    if not name:
        note(f"{path.name}: object {oid} has no name")
    multiple = _text(obj, "MultipleInstances").lower() == "multiple"
    row = [int(oid), name, multiple, [resources[r] for r in sorted(resources)]]
    return row, _text(obj, "ObjectVersion"), _notice(raw)


def build(source: Path, out: Path, note: Callable[[str], None] = print) -> int:
    """Write the table and the notices from the DDF files in ``source``; the number of objects."""
    found: dict[int, tuple[list[object], str, str, str]] = {}  # id: row, version, notice, file
    for path in sorted(source.glob("*.xml"), key=lambda p: (len(p.stem), p.stem)):
        if path.name == "DDF.xml":
            continue
        read = read_object(path, note)
        if read is None:
            continue
        row, version, notice = read
        oid = row[0]
        assert isinstance(oid, int)
        if oid in found:
            kept = found[oid]
            newer = _version(version) > _version(kept[1])
            old, new = (kept[3], path.name) if newer else (path.name, kept[3])
            note(
                f"object {oid} is defined by {kept[3]} (version {kept[1] or '?'}) and {path.name}"
                f" (version {version or '?'}): kept {new}, the newest; skipped {old}"
            )
            if not newer:
                continue
        found[oid] = (row, version, notice, path.name)
    objects = [found[oid][0] for oid in sorted(found)]
    table = {"format": FORMAT, "source": "OMA LwM2M Object Registry", "objects": objects}
    data = json.dumps(table, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    out.mkdir(parents=True, exist_ok=True)
    (out / "registry.json.gz").write_bytes(gzip.compress(data, compresslevel=9, mtime=0))
    (out / "LICENSES.txt").write_text(_licences(found), encoding="utf-8")
    return len(objects)


def _licences(found: dict[int, tuple[list[object], str, str, str]]) -> str:
    covers: dict[str, list[int]] = {}
    for oid in sorted(found):
        covers.setdefault(found[oid][2], []).append(oid)
    parts = [
        "The LwM2M object table (registry.json.gz) is derived from the object definitions of the\n"
        "OMA LwM2M Object Registry (https://github.com/OpenMobileAlliance/lwm2m-registry). Each\n"
        "definition carries the licence notice below that lists its object id; the notices are\n"
        "kept here as written.\n"
    ]
    bare = covers.pop("", None)
    for notice, ids in sorted(covers.items(), key=lambda kv: kv[1][0]):
        parts.append(f"{'=' * 72}\nObjects: {', '.join(map(str, ids))}\n{'-' * 72}\n{notice}\n")
    if bare:
        parts.append(
            f"{'=' * 72}\nObjects whose definition carries no licence notice: "
            f"{', '.join(map(str, bare))}\n"
        )
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", nargs="?", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("--out", type=Path, default=OUT, help="default: dispatcher/lwm2m/")
    args = parser.parse_args(argv)
    if not args.source.is_dir():
        print(f"error: {args.source}: no such directory", file=sys.stderr)
        return 2
    count = build(args.source, args.out)
    print(f"{count} objects -> {args.out / 'registry.json.gz'}, {args.out / 'LICENSES.txt'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

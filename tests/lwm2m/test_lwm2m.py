"""The LwM2M registry table: built from the DDF files, shipped in the package, looked up by id."""

from __future__ import annotations

import gzip
import importlib.util
import json
import xml.etree.ElementTree as ET
from pathlib import Path
from types import ModuleType

import pytest

from dispatcher.lwm2m import describe, find, lookup, objects, resource

REPO = Path(__file__).resolve().parents[2]
REGISTRY = REPO.parent / "shared" / "lwm2m-registry"
SCRIPT = REPO / "scripts" / "build_lwm2m_registry.py"


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_lwm2m_registry", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- the shipped table, on its own -----------------------------------------------------------


def test_the_shipped_table_holds_the_registry() -> None:
    assert len(objects()) > 300
    assert [o.id for o in objects()] == sorted(o.id for o in objects())
    fw = lookup(5)
    assert fw is not None and fw.name == "Firmware Update" and not fw.multiple
    assert sorted(fw.resources)[:5] == [0, 1, 2, 3, 5]  # 4 is not defined
    update = fw.resources[2]
    assert (update.name, update.operations, update.executable) == ("Update", "E", True)
    assert update.mandatory and not update.multiple
    temperature = lookup(3303)
    assert temperature is not None and temperature.name == "Temperature" and temperature.multiple
    on_off = resource(3311, 5850)
    assert on_off is not None
    assert (on_off.name, on_off.operations, on_off.type) == ("On/Off", "RW", "Boolean")
    assert not on_off.executable
    assert resource(5, 4) is None and resource(33000, 1) is None and lookup(33000) is None


def test_objects_are_found_by_a_part_of_their_name_in_any_case() -> None:
    found = find("TEMPERATURE")
    assert 3303 in [o.id for o in found]
    assert all("temperature" in o.name.lower() for o in found)
    assert find("no such object name at all") == []


def test_a_resource_is_described_by_its_names_and_operations() -> None:
    assert describe(5, 0, 2) == "5/0/2 Firmware Update · Update (E)"
    assert describe(3203, 0, 5750) == "3203/0/5750 Analog Output · Application Type (RW)"
    assert describe(33000, 0, 1) == "33000/0/1 (not in the registry)"
    assert describe(5, 1, 99) == "5/1/99 Firmware Update · resource 99 (not in the registry)"


def test_the_licence_notices_ship_beside_the_table() -> None:
    notices = (REPO / "dispatcher" / "lwm2m" / "LICENSES.txt").read_text(encoding="utf-8")
    assert "Open Mobile Alliance" in notices and "Redistribution and use" in notices
    covered = {
        int(n)
        for line in notices.splitlines()
        if line.startswith("Objects")
        for n in line.split(":", 1)[1].split(",")
    }
    assert covered == {o.id for o in objects()}


# -- the table against the XML it was built from ---------------------------------------------


@pytest.mark.skipif(
    not REGISTRY.is_dir(), reason=f"the registry's DDF files are not here ({REGISTRY})"
)
def test_every_object_file_of_the_registry_is_in_the_table_with_its_resources() -> None:
    missing, counts = [], []
    for path in sorted(REGISTRY.glob("*.xml")):
        if path.name == "DDF.xml":
            continue
        obj = ET.parse(path).getroot().find("Object")
        assert obj is not None, path
        oid = int((obj.findtext("ObjectID") or "").strip())
        items = obj.find("Resources")
        count = 0 if items is None else len(items.findall("Item"))
        found = lookup(oid)
        if found is None:
            missing.append(oid)
        elif len(found.resources) != count:
            counts.append((oid, count, len(found.resources)))
    assert missing == [] and counts == []


@pytest.mark.skipif(
    not REGISTRY.is_dir(), reason=f"the registry's DDF files are not here ({REGISTRY})"
)
def test_the_committed_table_is_what_the_script_builds(tmp_path: Path) -> None:
    _script().build(REGISTRY, tmp_path, note=lambda _: None)
    shipped = REPO / "dispatcher" / "lwm2m"
    assert (tmp_path / "registry.json.gz").read_bytes() == (
        shipped / "registry.json.gz"
    ).read_bytes()
    assert (tmp_path / "LICENSES.txt").read_text() == (shipped / "LICENSES.txt").read_text()


# -- the script's odd inputs -----------------------------------------------------------------

_NOTICE = "<!-- BSD-3 Clause License\n\n  Copyright 2030 Example.\n-->\n"


def _ddf(oid: str, version: str, items: str, name: str = "Thing") -> str:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n{_NOTICE}'
        '<LWM2M><Object ObjectType="MODefinition">'
        f"<Name>{name}</Name><ObjectID>{oid}</ObjectID><ObjectVersion>{version}</ObjectVersion>"
        f"<MultipleInstances>Multiple</MultipleInstances><Resources>{items}</Resources>"
        "</Object></LWM2M>\n"
    )


_ITEM = (
    '<Item ID="{}"><Name>{}</Name><Operations>{}</Operations>'
    "<MultipleInstances>Single</MultipleInstances><Mandatory>Mandatory</Mandatory>"
    "<Type>Integer</Type></Item>"
)


def test_the_script_keeps_the_newest_version_and_skips_what_it_cannot_read(
    tmp_path: Path,
) -> None:
    source, out = tmp_path / "registry", tmp_path / "out"
    source.mkdir()
    (source / "40000.xml").write_text(_ddf("40000", "1.0", _ITEM.format(0, "Old", "R")))
    (source / "40000-1_1.xml").write_text(
        _ddf("40000", "1.1", _ITEM.format(0, "New", "E") + _ITEM.format("x", "Bad id", "R"))
    )
    (source / "40001.xml").write_text(_ddf("urn:x", "1.0", ""))
    (source / "40002.xml").write_text("<LWM2M><Object>")
    (source / "40003.xml").write_text(_ddf("40003", "", '<Item ID="7"></Item>', name=""))
    (source / "DDF.xml").write_text("<DDFList/>")
    notes: list[str] = []
    assert _script().build(source, out, note=notes.append) == 2
    table = json.loads(gzip.decompress((out / "registry.json.gz").read_bytes()))
    [newest, bare] = table["objects"]
    assert newest == [40000, "Thing", True, [[0, "New", "E", "Integer", "", "", False, True]]]
    assert bare == [40003, "", True, [[7, "", "", "", "", "", False, False]]]
    text = "\n".join(notes)
    assert "kept 40000-1_1.xml, the newest; skipped 40000.xml" in text
    assert "resource ID 'x' is not an integer: skipped" in text
    assert "40001.xml: ObjectID 'urn:x' is not an integer: skipped" in text
    assert "40002.xml: not well-formed XML" in text
    assert "Copyright 2030 Example." in (out / "LICENSES.txt").read_text()

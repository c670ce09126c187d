"""The one command value: a write's typed values and the body they make, read back exactly;
the key and fingerprint of a command built from its fields."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import orjson
import pytest

from dispatcher.job.model import load_job
from dispatcher.model import (
    Command,
    Op,
    WriteValue,
    args_text,
    body_text,
    command_fingerprint,
    command_key,
    write_values,
)
from dispatcher.times import parse_timespec

IMEI = "490154203237518"


def write(*values: WriteValue) -> Command:
    return Command(IMEI, 3311, 0, None, parse_timespec("+1d"), op=Op.WRITE, mode=2, values=values)


@pytest.mark.parametrize(
    ("one", "other"),
    [
        (WriteValue(5850, True), WriteValue(5850, 1)),
        (WriteValue(5851, 1), WriteValue(5851, 1.0)),
        (WriteValue(5706, "1"), WriteValue(5706, 1)),
        (WriteValue(1, "0a", 1), WriteValue(1, "0a")),
    ],
)
def test_write_values_differ_when_their_json_would(one: WriteValue, other: WriteValue) -> None:
    assert one != other
    assert body_text((one,)) != body_text((other,))
    assert write(one) != write(other)
    assert write(one) == write(replace(one))


def test_a_body_reads_back_as_the_values_it_was_made_of_in_onenet_order() -> None:
    values = (
        *(WriteValue(5850, False), WriteValue(5851, 40), WriteValue(5852, 2.5)),
        *(WriteValue(1, "00ff", 1), WriteValue(2, 1_700_000_000, 2), WriteValue(5706, "x")),
    )
    text = body_text(values)
    assert text.startswith('{"data":[{"res_id":5850,"val":false},')
    assert '{"res_id":1,"type":1,"val":"00ff"}' in text
    assert write_values(text) == values
    assert [type(v.val) for v in write_values(text)] == [bool, int, float, str, int, str]
    assert orjson.loads(text)["data"] == [v.item() for v in values]


def test_text_that_is_no_body_is_refused() -> None:
    for text in ("not json", '{"data": 5}', '{"other": []}', '{"data": [{"val": 1}]}'):
        with pytest.raises(ValueError, match="not a write's body"):
            write_values(text)


def test_a_write_read_from_a_job_has_the_key_and_fingerprint_of_its_fields(tmp_path: Path) -> None:
    path = tmp_path / "lights.yaml"
    path.write_text(
        "op: write\nobj_id: 3311\nobj_inst_id: 0\nvalues: {5850: true, 5851: 40}\n"
        f"expired_time: +1d\ntargets:\n  - imei: '{IMEI}'\n",
        encoding="utf-8",
    )
    (cmd,) = load_job(path).commands()
    assert (cmd.op, cmd.args, cmd.values) == (
        Op.WRITE,
        None,
        (WriteValue(5850, True), WriteValue(5851, 40)),
    )
    assert cmd.key == command_key(IMEI, 3311, 0, None, args_text(cmd), 0, "write", 2, 0)
    rebuilt = write(WriteValue(5850, True), WriteValue(5851, 40))
    assert command_fingerprint(replace(cmd, source="", line=0, key="")) == command_fingerprint(
        rebuilt
    )
    assert command_fingerprint(rebuilt) != command_fingerprint(write(WriteValue(5850, True)))

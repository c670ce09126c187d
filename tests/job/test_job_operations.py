"""Operations in job files: op execute, write and read, a write's values typed by the registry,
what validation says of each, and jobs with steps."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import orjson
import pytest

from dispatcher.job.model import Command, Problem, load_job, validate_job
from dispatcher.model import args_text
from dispatcher.times import BEIJING
from tests.support.files import WriteFile

I1, I2, I3 = "490154203237518", "864512030000003", "358476090000076"
AT = datetime(2030, 1, 1, 12, tzinfo=BEIJING)


def check(path: Path, strict: bool = False) -> tuple[list[str], int, int, int]:
    """Every problem as text, and the counts: commands, warnings, errors."""
    found: list[Problem] = []
    v = validate_job(load_job(path), at=AT, strict=strict, on_problem=found.append)
    return [str(p).split(": ", 1)[1] for p in found], v.commands, v.warnings, v.errors


def commands(path: Path) -> list[Command]:
    return list(load_job(path).commands())


def body(c: Command) -> list[dict[str, object]]:
    """The items of the body a write sends: its typed values (a write has no args of its own)."""
    assert c.args is None and c.values
    data: list[dict[str, object]] = orjson.loads(args_text(c) or "")["data"]
    assert data == [v.item() for v in c.values]
    return data


LIGHTS = f"""\
job: lights
op: write
defaults:
  op: write
  obj_id: 3311
  obj_inst_id: 0
  values:
    5850: true
    5851: 40
  expired_time: +1d
targets:
  - imei: "{I1}"
  - imei: "{I2}"
    values: {{5851: 80}}
"""


def test_a_yaml_write_sends_its_values_typed_by_the_registry(write_file: WriteFile) -> None:
    path = write_file("lights.yaml", LIGHTS.replace("op: write\ndefaults", "defaults"))
    first, second = commands(path)
    assert (first.op, first.obj_id, first.obj_inst_id, first.res_id) == ("write", 3311, 0, None)
    assert body(first) == [{"res_id": 5850, "val": True}, {"res_id": 5851, "val": 40}]
    assert first.mode == 2  # partial: only the resources named change
    assert (second.res_id, body(second)) == (5851, [{"res_id": 5851, "val": 80}])
    assert first.key != second.key


def test_the_op_may_be_given_at_the_top_of_the_job_as_a_default(write_file: WriteFile) -> None:
    path = write_file("lights.yaml", LIGHTS)
    found, n, _, errors = check(path)
    assert (found, n, errors) == ([], 2, 0)
    assert {c.op for c in commands(path)} == {"write"}


def test_a_csv_write_names_one_resource_per_row_and_infers_unknown_types(
    write_file: WriteFile,
) -> None:
    path = write_file(
        "w.csv",
        "imei,op,obj_id,obj_inst_id,res_id,value,mode,expired_time\n"
        f"{I1},write,3311,0,5851,40,replace,+1d\n"
        f"{I2},write,3311,0,5850,on,,+1d\n"
        f"{I3},write,33000,0,7,12.5,2,+1d\n",
    )
    a, b, c = commands(path)
    assert (a.mode, body(a)) == (1, [{"res_id": 5851, "val": 40}])
    assert (b.mode, body(b)) == (2, [{"res_id": 5850, "val": True}])
    assert body(c) == [{"res_id": 7, "val": 12.5}]  # not in the registry: a decimal is a Float


def test_opaque_and_time_values_carry_their_onenet_type(write_file: WriteFile) -> None:
    path = write_file(
        "w.yaml",
        "defaults: {op: write, obj_id: 3, obj_inst_id: 0, expired_time: +1d}\n"
        f'targets:\n  - imei: "{I1}"\n    values: {{13: "2030-01-01T00:00:00"}}\n'
        f'  - {{imei: "{I2}", obj_id: 5, values: {{0: "0a0B"}}}}\n',
    )
    time, opaque = commands(path)
    # A time without a zone is Beijing time, sent as Unix seconds with type 2.
    expected = int(datetime(2030, 1, 1, tzinfo=BEIJING).timestamp())
    assert body(time) == [{"res_id": 13, "type": 2, "val": expected}]
    assert body(opaque) == [{"res_id": 0, "type": 1, "val": "0a0b"}]


def test_a_quoted_yaml_value_of_an_unknown_resource_is_sent_as_text(write_file: WriteFile) -> None:
    path = write_file(
        "w.yaml",
        "defaults: {op: write, obj_id: 33000, obj_inst_id: 0, expired_time: +1d}\n"
        f'targets:\n  - {{imei: "{I1}", values: {{1: "40", 2: 40, 3: yes}}}}\n',
    )
    (c,) = commands(path)
    assert body(c) == [
        {"res_id": 1, "val": "40"},
        {"res_id": 2, "val": 40},
        {"res_id": 3, "val": True},
    ]


def test_a_read_needs_only_the_object(write_file: WriteFile) -> None:
    path = write_file(
        "r.csv",
        "imei,op,obj_id,obj_inst_id,res_id,expired_time\n"
        f"{I1},read,3,0,3,+1d\n{I2},read,3,,,+1d\n{I3},read,3,0,,+1d\n",
    )
    one, whole, instance = commands(path)
    assert [(c.op, c.obj_inst_id, c.res_id, c.args) for c in (one, whole, instance)] == [
        ("read", 0, 3, None),
        ("read", None, None, None),
        ("read", 0, None, None),
    ]
    assert len({one.key, whole.key, instance.key}) == 3


def test_a_read_and_an_execute_of_the_same_resource_are_two_commands(
    write_file: WriteFile,
) -> None:
    path = write_file(
        "j.csv",
        f"imei,op,obj_id,obj_inst_id,res_id,expired_time\n{I1},read,5,0,2,+1d\n"
        f"{I1},execute,5,0,2,+1d\n{I1},,5,0,2,+1d\n",
    )
    found, n, _, errors = check(path)
    # The third row is the second's again (execute is the default): a duplicate, not a read.
    assert (n, errors) == (2, 1)
    assert "the same command" in found[-1]


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (f"{I1},read,3,,3,,+1d", "res_id: a read of one resource needs obj_inst_id too"),
        (f"{I1},read,3,0,3,x,+1d", "value: applies to op: write only (this is op: read)"),
        (f"{I1},execute,5,0,2,x,+1d", "value: applies to op: write only (this is op: execute)"),
        (f"{I1},write,3311,0,,x,+1d", "res_id: is required with value (the resource written)"),
        (f"{I1},write,3311,0,5851,,+1d", "values: is required for op: write (or res_id and value)"),
        (f"{I1},wirte,3311,0,5851,1,+1d", "op: unknown operation 'wirte' (did you mean write?)"),
        (f"{I1},write,3311,,5851,1,+1d", "obj_inst_id: is required for op: write"),
    ],
)
def test_each_operation_says_what_it_needs(write_file: WriteFile, row: str, message: str) -> None:
    path = write_file("j.csv", f"imei,op,obj_id,obj_inst_id,res_id,value,expired_time\n{row}\n")
    found, n, _, errors = check(path)
    assert (n, errors) == (0, 1), found
    assert found == [message]


def test_a_csv_has_no_values_column(write_file: WriteFile) -> None:
    path = write_file(
        "j.csv", f"imei,op,obj_id,obj_inst_id,values,expired_time\n{I1},write,3,0,x,+1d\n"
    )
    found, *_ = check(path)
    assert any(p.startswith("values: is YAML's (a mapping)") for p in found)


def test_values_and_res_id_together_are_an_error(write_file: WriteFile) -> None:
    path = write_file(
        "w.yaml",
        "defaults: {op: write, obj_id: 3311, obj_inst_id: 0, res_id: 5851, expired_time: +1d}\n"
        f'targets:\n  - {{imei: "{I1}", values: {{5850: true}}}}\n',
    )
    found, n, _, errors = check(path)
    assert (n, errors) == (0, 1)
    assert found == ["res_id: values names the resources written: remove res_id"]


def test_a_write_body_over_2_kb_is_an_error_at_validation(write_file: WriteFile) -> None:
    long = "x" * 1000
    path = write_file(
        "w.yaml",
        "defaults: {op: write, obj_id: 33000, obj_inst_id: 0, expired_time: +1d}\n"
        f'targets:\n  - {{imei: "{I1}", values: {{1: {long}, 2: {long}}}}}\n'
        f'  - {{imei: "{I2}", values: {{1: {long}}}}}\n',
    )
    found, n, _, errors = check(path)
    assert (n, errors) == (1, 1)
    assert found[0].startswith("values: the write's body is 2,0")
    assert "OneNET takes at most 2,048" in found[0]


# -- what the registry says, as warnings (errors with --strict) -----------------------------


@pytest.mark.parametrize(
    ("op", "obj", "res", "value", "said"),
    [
        ("write", 3, 3, "1.0", "3/0/3 is Device · Firmware Version (R): read-only; writing it"),
        ("write", 5, 2, "1", "5/0/2 is Firmware Update · Update (E): executable, not writable"),
        ("write", 3311, 5851, "abc", "'abc' is not an Integer (3311/5851 Light Control · Dimmer"),
        ("write", 3311, 5851, "140", "140 is outside Dimmer's range 0..100"),
        ("read", 5, 2, "", "5/0/2 is Firmware Update · Update (E): execute-only; reading it"),
        ("execute", 3, 3, "", "3/0/3 is Device · Firmware Version (R): not executable"),
    ],
)
def test_what_cannot_work_is_a_warning_and_with_strict_an_error(
    write_file: WriteFile, op: str, obj: int, res: int, value: str, said: str
) -> None:
    path = write_file(
        "j.csv",
        "imei,op,obj_id,obj_inst_id,res_id,value,expired_time\n"
        f"{I1},{op},{obj},0,{res},{value},+1d\n{I2},{op},{obj},0,{res},{value},+1d\n",
    )
    found, n, warnings, errors = check(path)
    assert (n, warnings, errors) == (2, 2, 0)
    assert all(said in p for p in found), found
    found, n, warnings, errors = check(path, strict=True)
    assert (n, warnings, errors) == (0, 0, 2)
    assert all(said in p for p in found)


def test_a_vendor_resource_is_fine_and_said_to_be_unknown(write_file: WriteFile) -> None:
    path = write_file(
        "j.csv",
        f"imei,op,obj_id,obj_inst_id,res_id,value,expired_time\n{I1},write,33000,0,1,abc,+1d\n",
    )
    found, n, warnings, errors = check(path, strict=True)
    assert (found, n, warnings, errors) == ([], 1, 0, 0)
    v = validate_job(load_job(path), at=AT)
    assert v.resources == (("write", 33000, 0, 1),)


def test_the_summary_names_each_operation_and_resource(write_file: WriteFile) -> None:
    path = write_file(
        "j.csv",
        "imei,op,obj_id,obj_inst_id,res_id,value,expired_time\n"
        f"{I1},write,5,0,1,coap://fw.example/2.bin,+1d\n{I1},,5,0,2,,+1d\n{I1},read,3,0,3,,+1d\n",
    )
    v = validate_job(load_job(path), at=AT)
    assert v.resources == (("write", 5, 0, 1), ("execute", 5, 0, 2), ("read", 3, 0, 3))


# -- steps ----------------------------------------------------------------------------------

FIRMWARE = f"""\
job: fw
steps:
  - {{op: write, obj_id: 5, obj_inst_id: 0, values: {{1: "coap://fw.example/2.4.1.bin"}}}}
  - {{op: execute, obj_id: 5, obj_inst_id: 0, res_id: 2}}
  - {{op: read, obj_id: 3, obj_inst_id: 0, res_id: 3, valid_time: +2h}}
defaults: {{expired_time: +2d, trigger: [register, update]}}
targets:
  - "{I1}"
  - {{imei: "{I2}", expired_time: +3d}}
"""


def test_steps_give_every_device_each_operation_in_turn(write_file: WriteFile) -> None:
    path = write_file("fw.yaml", FIRMWARE)
    found, n, warnings, errors = check(path)
    assert (found, n, warnings, errors) == ([], 6, 0, 0)
    cmds = commands(path)
    assert [(c.imei, c.step, c.op) for c in cmds] == [
        (I1, 1, "write"), (I1, 2, "execute"), (I1, 3, "read"),
        (I2, 1, "write"), (I2, 2, "execute"), (I2, 3, "read"),
    ]  # fmt: skip
    by_key = {c.key: c for c in cmds}
    for c in cmds:
        if c.step == 1:
            assert c.after == ""
        else:
            before = by_key[c.after]
            assert (before.imei, before.step) == (c.imei, c.step - 1)
    # A target's times apply to each of its steps; a step's own to that step.
    assert {c.expired_time.text for c in cmds if c.imei == I2} == {"+3d"}
    assert [c.valid_time.text if c.valid_time else None for c in cmds[:3]] == [None, None, "+2h"]


def test_a_step_is_part_of_the_key_so_a_repeated_operation_is_two_commands(
    write_file: WriteFile,
) -> None:
    path = write_file(
        "twice.yaml",
        "steps:\n  - {op: read, obj_id: 5, obj_inst_id: 0, res_id: 3}\n"
        "  - {op: execute, obj_id: 5, obj_inst_id: 0, res_id: 2}\n"
        "  - {op: read, obj_id: 5, obj_inst_id: 0, res_id: 3}\n"
        f"defaults: {{expired_time: +1d}}\ntargets: ['{I1}']\n",
    )
    found, n, _, errors = check(path)
    assert (found, n, errors) == ([], 3, 0)
    assert len({c.key for c in commands(path)}) == 3


def test_in_a_job_with_steps_a_target_cannot_say_what_is_done(write_file: WriteFile) -> None:
    text = FIRMWARE.replace(
        f'- {{imei: "{I2}", expired_time: +3d}}', f'- {{imei: "{I2}", res_id: 9}}'
    )
    found, n, _, errors = check(write_file("fw.yaml", text))
    assert (n, errors) == (3, 1)
    assert found == ["res_id: in a job with steps:, each step says what is done: give it there"]


def test_in_a_job_with_steps_a_csv_cannot_have_an_operation_column(
    write_file: WriteFile,
) -> None:
    write_file("fleet.csv", f"imei,obj_id\n{I1},5\n")
    text = FIRMWARE.split("targets:")[0] + "targets_csv: fleet.csv\n"
    found, _, _, errors = check(write_file("fw.yaml", text))
    assert errors >= 1
    assert "obj_id: in a job with steps:, each step says what is done: give it there" in found


def test_each_step_is_checked_and_said_at_its_line(write_file: WriteFile) -> None:
    text = FIRMWARE.replace("res_id: 2}", "res_id: 2, mode: partial}")
    found, n, _, errors = check(write_file("fw.yaml", text))
    assert errors >= 1 and n < 6
    assert found == ["mode: applies to op: write only (this is op: execute)"]


def test_a_step_going_through_another_product_than_the_step_before_is_refused_at_its_line(
    write_file: WriteFile,
) -> None:
    # Lanes (one per product) do not wait for each other: a step sent through another product
    # than the step before could never be ordered after it, and would be held back on every run.
    text = FIRMWARE.replace("res_id: 2}", "res_id: 2, product: meters}")
    found, _, _, errors = check(write_file("fw.yaml", text))
    assert errors == 1
    assert found == [
        "product: step 2 goes through product meters, step 1 through the default product:"
        " a device's steps go through one product (give product: on the job, in defaults:"
        " or on each target)"
    ]
    line = text.splitlines().index(next(t for t in text.splitlines() if "meters" in t)) + 1
    problems: list[Problem] = []
    validate_job(load_job(write_file("fw.yaml", text)), at=AT, on_problem=problems.append)
    assert [p.line for p in problems] == [line]


def test_steps_all_naming_the_jobs_product_are_one_product(write_file: WriteFile) -> None:
    text = "product: meters\n" + FIRMWARE.replace("res_id: 2}", "res_id: 2, product: meters}")
    found, n, _, errors = check(write_file("fw.yaml", text))
    assert (found, n, errors) == ([], 6, 0)
    assert {c.product for c in commands(write_file("fw.yaml", text))} == {"meters"}


@pytest.mark.parametrize(
    "values",
    ['{5851: 10, "5851": 20}', "{5851: 10, 5851: 20}", '{5851: 10, "05851": 20}'],
)
def test_a_write_naming_one_resource_twice_is_refused_at_its_line(
    write_file: WriteFile, values: str
) -> None:
    text = LIGHTS.replace("op: write\ndefaults", "defaults").replace(
        "values: {5851: 80}", f"values: {values}"
    )
    path = write_file("lights.yaml", text)
    problems: list[Problem] = []
    v = validate_job(load_job(path), at=AT, on_problem=problems.append)
    assert v.errors == 1 and v.commands == 1
    (problem,) = problems
    assert problem.line == text.splitlines().index(f"    values: {values}") + 1
    assert str(problem).split(": ", 1)[1] == "values: resource 5851 is written twice"

"""A retry job of steps written and read back: the sections copied from the job as written (and
the ones that name the fleet or roll it out left behind), each target with its from_step and the
fields the steps do not give, read back by load_job as the same commands; the file checked before
it is put in place."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from dispatcher.errors import JobFileError
from dispatcher.job.model import Command, load_job
from dispatcher.job.steps_copy import check_written, read_steps_source
from dispatcher.job.writer import JobWriter
from dispatcher.model.command import command_fingerprint
from tests.support.jobs import I1, I2, I3

JOB = """\
job: fw
product: meters
rollout: {canary: 2}
schedule: {start_at: "2020-01-01T00:00:00"}
defaults: {obj_inst_id: 0, expired_time: +2d, trigger: [register, update]}
steps:
  - op: write
    obj_id: 5
    values: {1: "coap://fw.example/2.4.1.bin"}
  - {op: execute, obj_id: 5, res_id: 2, valid_time: +30m, wait: delivered}
  - {op: read, obj_id: 3, res_id: 3, valid_time: '+2h'}
targets_csv: fleet.csv
"""


def write_job(tmp_path: Path, text: str = JOB) -> Path:
    (tmp_path / "fleet.csv").write_text(f"imei,retry\n{I1},\n{I2},7\n{I3},\n", encoding="utf-8")
    path = tmp_path / "fw.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def original(path: Path) -> dict[tuple[str, int], Command]:
    """The commands of the job without ``wait:`` (not a field this reader knows)."""
    plain = path.with_name("plain.yaml")
    plain.write_text(path.read_text("utf-8").replace(", wait: delivered", ""), encoding="utf-8")
    return {(c.imei, c.step): c for c in load_job(plain).commands()}


def test_the_sections_of_the_steps_are_copied_as_written_and_the_fleet_and_rollout_left_behind(
    tmp_path: Path,
) -> None:
    source = read_steps_source(write_job(tmp_path), I1)
    assert source.sections.splitlines() == [
        "product: meters",
        "defaults: {obj_inst_id: 0, expired_time: +2d, trigger: [register, update]}",
        "steps:",
        "- op: write",
        "  obj_id: 5",
        '  values: {1: "coap://fw.example/2.4.1.bin"}',
        "- {op: execute, obj_id: 5, res_id: 2, valid_time: +30m, wait: delivered}",
        "- {op: read, obj_id: 3, res_id: 3, valid_time: '+2h'}",
    ]
    assert source.waits == (False, True, False)


def test_a_retry_job_of_steps_reads_back_as_the_same_commands_from_each_targets_step(
    tmp_path: Path,
) -> None:
    job = write_job(tmp_path)
    was = original(job)
    source = read_steps_source(job, I1)
    out = tmp_path / "retry.yaml"
    starts = {I1: 1, I2: 2, I3: 3}
    with JobWriter(out) as writer:
        for imei, first in starts.items():
            mine = [was[imei, step] for step in range(first, 4)]
            fields = {"from_step": first, **source.target_fields(mine)}
            writer.add_target(imei, fields, len(mine), (f"why: a note\x07 on {imei}",))
        written = writer.commit(name="fw-retry", comment=["a comment"], sections=source.sections)
    assert (written.commands, written.devices, written.repeats) == (6, 3, False)
    text = out.read_text("utf-8")
    assert "retry: 7" in text and text.count("retry:") == 1  # only the target that gives it
    assert "# why: a note\\x07 on" in text
    # Read back without wait: (not a field this reader knows yet): the same commands, each field.
    out.write_text(text.replace(", wait: delivered", ""), encoding="utf-8")
    back = load_job(out)
    assert [t.from_step for t in back.targets] == [1, 2, 3]
    got = list(back.commands())
    assert [(c.imei, c.step) for c in got] == [(I1, 1), (I1, 2), (I1, 3), (I2, 2), (I2, 3), (I3, 3)]
    for c in got:
        assert (c.key, command_fingerprint(c)) == (
            was[c.imei, c.step].key,
            command_fingerprint(was[c.imei, c.step]),
        )


def test_a_device_twice_makes_the_job_allow_duplicates(tmp_path: Path) -> None:
    out = tmp_path / "retry.yaml"
    source = read_steps_source(write_job(tmp_path), I1)
    with JobWriter(out) as writer:
        writer.add_target(I1, {"from_step": 3}, 1)
        writer.add_target(I1, {"from_step": 3}, 1)
        written = writer.commit(sections=source.sections.replace(", wait: delivered", ""))
    assert written.repeats and (written.commands, written.devices) == (2, 1)
    assert [c.occurrence for c in load_job(out).commands()] == [0, 1]


def test_a_csv_job_cannot_hold_targets_of_steps(tmp_path: Path) -> None:
    with JobWriter(tmp_path / "retry.csv") as writer, pytest.raises(ValueError, match="YAML"):
        writer.add_target(I1, {"from_step": 1}, 1)


def test_a_field_the_steps_no_longer_give_is_refused(tmp_path: Path) -> None:
    job = write_job(tmp_path)
    was = original(job)
    source = read_steps_source(job, I1)
    # Two steps of one device with two different retry values: no target's field makes that.
    mine = [replace(was[I1, 2], retry=4), replace(was[I1, 3], retry=5)]
    with pytest.raises(ValueError, match="its steps give retry as 4, 5"):
        source.target_fields(mine)


def test_a_file_that_fails_its_check_is_never_put_in_place(tmp_path: Path) -> None:
    job = write_job(tmp_path)
    was = original(job)
    source = read_steps_source(job, I1)
    out = tmp_path / "retry.yaml"
    expected = {was[I1, 3].key: command_fingerprint(replace(was[I1, 3], retry=9))}
    with JobWriter(out) as writer:
        writer.add_target(I1, {"from_step": 3}, 1)
        sections = source.sections.replace(", wait: delivered", "")

        def check(path: Path) -> None:
            check_written(path, expected)

        with pytest.raises(ValueError, match="would not be sent as the job gave it"):
            writer.commit(sections=sections, check=check)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fleet.csv", "fw.yaml", "plain.yaml"]


def test_a_job_file_without_steps_is_no_source_of_steps(tmp_path: Path) -> None:
    path = tmp_path / "plain.yaml"
    path.write_text(f"defaults: {{obj_id: 3, res_id: 4, expired_time: +2d}}\ntargets: ['{I1}']\n")
    with pytest.raises(JobFileError, match="has no steps"):
        read_steps_source(path, I1)


@pytest.mark.parametrize(
    ("defaults", "steps", "waits"),
    [
        ("", ["", "", ""], (False, False, False)),  # wait: accepted, the default
        ("wait: delivered, ", ["", "wait: accepted, ", ""], (True, False, True)),
        ("", ["wait: {until: delivered, timeout: 6h}, ", "", "wait: Delivered, "],
         (True, False, True)),
    ],
)  # fmt: skip
def test_which_steps_wait_for_delivery_is_read_from_each_step_or_the_defaults(
    tmp_path: Path, defaults: str, steps: list[str], waits: tuple[bool, ...]
) -> None:
    ops = [
        "op: read, obj_id: 3, res_id: 1",
        "op: read, obj_id: 3, res_id: 2",
        "op: read, obj_id: 3",
    ]
    text = (
        f"defaults: {{{defaults}obj_inst_id: 0, expired_time: +2d}}\nsteps:\n"
        + "".join(f"  - {{{given}{op}}}\n" for given, op in zip(steps, ops, strict=True))
        + f"targets: ['{I1}']\n"
    )
    path = tmp_path / "fw.yaml"
    path.write_text(text, encoding="utf-8")
    assert read_steps_source(path, I1).waits == waits


def test_the_sheet_and_encoding_of_the_fleet_are_left_behind(tmp_path: Path) -> None:
    path = write_job(
        tmp_path,
        JOB.replace("targets_csv: fleet.csv\n", "targets_xlsx: fleet.xlsx\nsheet: 设备\n"),
    )
    sheet = path.with_name("gbk.yaml")
    sheet.write_text(JOB + "encoding: gbk\n", encoding="utf-8")
    for job in (path, sheet):
        copied = read_steps_source(job, I1).sections
        assert "product: meters" in copied
        assert not any(key in copied for key in ("targets_", "sheet:", "encoding:"))

"""A job's fingerprint (order-free, the sum of its commands', covering every field sent, the same
whatever encoding or spreadsheet the rows come from), and targets read from a CSV beside a YAML
job."""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import pytest

from dispatcher.errors import JobFileError
from dispatcher.job.model import (
    Command,
    command_fingerprint,
    command_key,
    job_fingerprint,
    load_job,
)
from dispatcher.times import parse_timespec
from tests.support.files import WriteFile
from tests.support.jobs import (
    I1,
    I2,
    I3,
    check,
    commands,
    yaml_job,
)
from tests.support.sheets import write_sheet

FLEET = [f"{I1},3303,0,5605,on,+1d,7", f"{I2},3303,0,5605,off,+2d,2", f"{I3},3303,0,5605,on,+1d,3"]
FLEET_HEADER = "imei,obj_id,obj_inst_id,res_id,args,expired_time,trigger_msg\n"


def fingerprint(write_file: WriteFile, rows: list[str], name: str = "fleet.csv") -> str:
    path = write_file(name, FLEET_HEADER + "\n".join(rows) + "\n")
    result, problems = check(path)
    assert problems == [] and result.commands == len(rows)
    return result.fingerprint


def test_fingerprint_does_not_depend_on_the_order_of_rows(write_file: WriteFile) -> None:
    assert fingerprint(write_file, FLEET) == fingerprint(write_file, FLEET[::-1])


def test_fingerprint_changes_with_any_field_sent(write_file: WriteFile) -> None:
    base = fingerprint(write_file, FLEET)
    changed = [
        [*FLEET[:2], FLEET[2].removesuffix(",3") + ",5"],  # one trigger_msg
        [*FLEET[:2], FLEET[2].replace("+1d", "+25h")],  # one expired_time's text
        [*FLEET[:2], FLEET[2].replace(",on,", ",on;,")],  # one args
        FLEET[:2],
    ]
    found = {fingerprint(write_file, rows) for rows in changed}
    assert base not in found and len(found) == len(changed)
    assert fingerprint(write_file, FLEET, name="other-name.csv") != base  # the job's name


def test_fingerprint_is_the_sum_of_the_command_fingerprints(write_file: WriteFile) -> None:
    path = write_file(
        "j.yaml",
        "allow_duplicates: true\n"
        + yaml_job(
            f"  - '{I1}'\n  - imei: '{I2}'\n    valid_time: +1h\n    retry: 0\n  - '{I1}'\n"
        ),
    )
    result, _ = check(path)
    sent = commands(path)
    assert result.fingerprint == job_fingerprint("test", sent)
    total = sum(command_fingerprint(c) for c in sent)
    assert result.fingerprint == job_fingerprint("test", total)
    assert len({command_fingerprint(c) for c in sent}) == 3  # the two copies differ by occurrence
    assert len(result.fingerprint) == 32 and int(result.fingerprint, 16) >= 0


def test_command_fingerprint_covers_every_field_sent() -> None:
    base = Command(I1, 1, 0, 1, parse_timespec("+1d"), key=command_key(I1, 1, 0, 1, None))
    others = [
        replace(base, args="a", key=command_key(I1, 1, 0, 1, "a")),
        replace(base, res_id=2, key=command_key(I1, 1, 0, 2, None)),
        replace(base, occurrence=1, key=command_key(I1, 1, 0, 1, None, 1)),
        replace(base, imei=I2, key=command_key(I2, 1, 0, 1, None)),
        replace(base, expired_time=parse_timespec("+2d")),
        replace(base, valid_time=parse_timespec("+1h")),
        replace(base, retry=0),
        replace(base, timeout=30),
        replace(base, trigger_msg=1),
    ]
    parts = {command_fingerprint(c) for c in others}
    assert command_fingerprint(base) not in parts and len(parts) == len(others)
    assert command_fingerprint(replace(base, source="x.csv", line=9)) == command_fingerprint(base)


def test_targets_csv_is_relative_to_the_job_file(
    write_file: WriteFile, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_file("jobs/fleet/devices.csv", f"imei,args,retry\n{I1},,\n{I2},special,5\n")
    write_file(
        "jobs/push.yaml",
        yaml_job(
            "", "obj_id: 3\n  obj_inst_id: 0\n  res_id: 4\n  args: std\n  expired_time: +1d"
        ).replace("targets:\n", "targets_csv: fleet/devices.csv\n"),
    )
    monkeypatch.chdir(tmp_path)
    job = load_job("jobs/push.yaml")
    first, second = job.commands()
    assert (first.args, first.retry, first.line) == ("std", 3, 2)
    assert first.source == os.path.join("jobs", "fleet", "devices.csv")
    assert (second.args, second.retry, second.line) == ("special", 5, 3)


def test_targets_and_targets_csv_together_share_duplicate_detection(write_file: WriteFile) -> None:
    write_file("d.csv", f"imei\n{I2}\n{I1}\n")
    path = write_file("j.yaml", yaml_job(f"  - '{I1}'\n") + "targets_csv: d.csv\n")
    result, problems = check(path)
    csv_path = path.parent / "d.csv"
    assert problems == [
        f"{csv_path}:3: imei: the same command (imei, obj_id, obj_inst_id, res_id, args) as "
        f"{path}:8; set allow_duplicates: true to send it again"
    ]
    assert (result.commands, result.devices) == (2, 2)


def test_targets_csv_missing_column_without_default(write_file: WriteFile) -> None:
    write_file("d.csv", f"imei,obj_id\n{I1},1\n")
    path = write_file(
        "j.yaml", "defaults:\n  obj_inst_id: 0\n  expired_time: +1d\ntargets_csv: d.csv\n"
    )
    _, problems = check(path)
    assert problems == [f"{path.parent / 'd.csv'}:1: res_id: no such column, and no default"]


def test_missing_targets_csv_cites_the_job_line(write_file: WriteFile) -> None:
    path = write_file("j.yaml", "job: x\ntargets_csv: nowhere.csv\n")
    with pytest.raises(JobFileError, match=r"j\.yaml:2: targets_csv: no such file: .*nowhere\.csv"):
        load_job(path)


def test_fingerprint_is_the_same_for_the_same_commands_re_encoded_or_re_saved(
    tmp_path: Path,
) -> None:
    rows = [f"{I1},3303,0,5605,开灯,2030-01-02T02:00:00,7", f"{I2},3303,0,5605,关,+2d,2"]
    text = FLEET_HEADER + "\n".join(rows) + "\n"
    saved = {  # one job, "fleet", as each tool might save it
        "utf-8/fleet.csv": text.encode(),
        "bom-crlf/fleet.csv": ("\ufeff" + text.replace("\n", "\r\n")).encode(),
        "gbk/fleet.csv": text.encode("gbk"),
        "utf-16/fleet.csv": text.encode("utf-16"),
        "excel-sep/fleet.csv": ("sep=,\r\n" + text).encode("gb18030"),
    }
    found = set()
    for name, data in saved.items():
        path = tmp_path / name
        path.parent.mkdir()
        path.write_bytes(data)
        result, problems = check(path)
        assert (problems, result.commands) == ([], 2), name
        found.add(result.fingerprint)
    sheet = [
        FLEET_HEADER.strip().split(","),
        [int(I1), 3303.0, 0, 5605, "开灯", datetime(2030, 1, 2, 2, 0), 7.0],
        [I2, 3303, 0, 5605, "关", "+2d", 2],
    ]
    result, problems = check(write_sheet(tmp_path / "xlsx" / "fleet.xlsx", sheet))
    assert (problems, result.commands) == ([], 2)
    assert found == {result.fingerprint}

"""``dispatcher retry-failed`` in-process: the new job holds what did not get through as the job
gave it (writes with their values' types, CSV notes, relative times kept, passed times flagged),
and the refusals (names, existing files, missing directories, the job's own file, no ledger)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from dispatcher.job.model import load_job
from dispatcher.ledger.sqlite import Ledger
from dispatcher.model import WriteValue
from tests.support.cli import invoke
from tests.support.e2e import fleet
from tests.support.retry import AT, SENT_AGAIN, fields_of, make_ledger, read_back, write_job

# --- the command line ------------------------------------------------------------------------


def test_a_retry_job_of_writes_gives_back_each_value_with_the_type_it_was_sent_with(
    tmp_path: Path,
) -> None:
    devices = fleet(3)
    job_path = tmp_path / "lights.yaml"
    job_path.write_text(
        "job: lights\nop: write\nmode: replace\nobj_id: 3311\nobj_inst_id: 0\n"
        "values: {5850: true, 5851: 40, 5706: 1}\n"  # Boolean, Integer, String (the registry's)
        "expired_time: '+2d'\n"
        "targets:\n"
        + "".join(f"  - imei: '{d}'\n" for d in devices[:2])
        # A CSV cell would say the same of this one: 0 is a Boolean's false.
        + f"  - imei: '{devices[2]}'\n    values: {{5850: 0, 5706: 'x'}}\n",
        encoding="utf-8",
    )
    sent = list(load_job(job_path).commands())
    ledger_path = make_ledger(job_path, ["rejected", "delivered", "failed"])
    with Ledger.open(ledger_path, read_only=True) as ledger:
        kept = {r.command.imei: r.command.values for r in ledger.rows()}
    assert kept == {c.imei: c.values for c in sent}  # the ledger gives back the typed values
    out = tmp_path / "retry.yaml"

    result = invoke("retry-failed", ledger_path, "-o", out)

    assert result.exit_code == 0, result.stderr
    again = list(load_job(out).commands())
    assert [fields_of(c) for c in again] == [fields_of(sent[0]), fields_of(sent[2])]
    assert again[0].values == (WriteValue(5850, True), WriteValue(5851, 40), WriteValue(5706, "1"))
    assert again[1].values == (WriteValue(5850, False), WriteValue(5706, "x"))
    assert [type(v.val) for c in again for v in c.values] == [bool, int, str, bool, str]
    assert (again[0].op, again[0].mode, again[0].args) == ("write", 1, None)


def test_retry_failed_writes_the_commands_that_did_not_get_through_as_the_job_gave_them(
    tmp_path: Path,
) -> None:
    fates = ["delivered", "rejected", "in_doubt", "never woke", "failed", "cancelled", "pending",
             "in_flight", "device error", "expired", "waiting"]  # fmt: skip
    devices = fleet(len(fates))
    job_path = write_job(tmp_path / "job.yaml", devices)
    ledger_path = make_ledger(job_path, fates)
    out = tmp_path / "retry.yaml"

    result = invoke("retry-failed", ledger_path, "-o", out)

    assert result.exit_code == 0, result.stderr
    wanted = [d for d, fate in zip(devices, fates, strict=True) if fate in SENT_AGAIN]
    original = {c.imei: fields_of(c) for c in load_job(job_path).commands()}
    assert read_back(out) == [original[d] for d in wanted]  # every field, in job order
    assert load_job(out).name == "reboot bench-retry"
    text = out.read_text(encoding="utf-8")
    assert text.startswith(f"# Written by dispatcher retry-failed from {ledger_path} at ")
    assert (
        "# The commands of job 'reboot bench' that did not get through: 1 rejected, 1 failed,"
        " 1 expired, 1 not sent, 1 delivery expired, 1 delivery failed.\n"
    ) in text
    assert f"# delivery expired (send_status 4): {job_path}:19\n" in text
    assert f"# rejected (errno 1): {job_path}:13\n" in text
    err = result.stderr
    assert (
        f"wrote 6 commands for 6 devices to {out}: 1 rejected, 1 failed, 1 expired, 1 not sent,"
        " 1 delivery expired, 1 delivery failed"
    ) in err
    assert "left out 2 commands that may be at OneNET already (1 in doubt, 1 in flight)" in err
    assert f"`dispatcher run {job_path}` settles them first" in err
    assert result.stdout == ""
    assert invoke("validate", out).exit_code == 0


def test_retry_failed_writes_a_csv_job_with_a_note_column(tmp_path: Path) -> None:
    devices = fleet(3)
    job_path = write_job(tmp_path / "job.yaml", devices)
    ledger_path = make_ledger(job_path, ["rejected", "delivered", "device error"])
    out = tmp_path / "retry.csv"

    result = invoke("retry-failed", ledger_path, "-o", out)

    assert result.exit_code == 0, result.stderr
    original = {c.imei: fields_of(c) for c in load_job(job_path).commands()}
    assert read_back(out) == [original[devices[0]], original[devices[2]]]
    header, first, *_ = out.read_text(encoding="utf-8").splitlines()
    assert header.endswith(",trigger_msg,op,mode,value,product,# note")
    assert first.endswith(f",rejected (errno 1): {job_path}:10")
    assert invoke("validate", out).exit_code == 0


def test_relative_times_stay_relative(tmp_path: Path) -> None:
    job_path = write_job(tmp_path / "job.yaml", fleet(1), valid_time="+10m", expired_time="+2d")
    ledger_path = make_ledger(job_path, ["rejected"])
    assert invoke("retry-failed", ledger_path, "-o", tmp_path / "retry.yaml").exit_code == 0
    (cmd,) = load_job(tmp_path / "retry.yaml").commands()
    assert (cmd.valid_time and cmd.valid_time.text, cmd.expired_time.text) == ("+10m", "+2d")
    assert cmd.expired_time.offset == timedelta(days=2)
    assert "has passed" not in (tmp_path / "retry.yaml").read_text(encoding="utf-8")


def test_a_passed_absolute_time_is_flagged_and_the_command_still_written(tmp_path: Path) -> None:
    devices = fleet(12)
    job_path = write_job(tmp_path / "job.yaml", devices, expired_time="2021-03-04T05:06:07")
    ledger_path = make_ledger(job_path, ["expired"] * 12)
    out = tmp_path / "retry.yaml"

    result = invoke("retry-failed", ledger_path, "-o", out)

    assert result.exit_code == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert warnings[:10] == [
        f"warning: {job_path}:{10 + 3 * n}: expired_time: 2021-03-04T05:06:07 has passed"
        for n in range(10)
    ]
    assert warnings[10:] == ["warning: and 2 more"]
    assert "`dispatcher validate" in result.stderr and "until the time is changed" in result.stderr
    text = out.read_text(encoding="utf-8")
    assert text.count("# expired_time 2021-03-04T05:06:07 has passed: change it") == 12
    assert [c.imei for c in load_job(out).scan(at=AT, past_times="allow")] == devices
    refused = invoke("validate", out)
    assert refused.exit_code == 1
    assert "expired_time: 2021-03-04T05:06:07 is in the past" in refused.stdout


@pytest.mark.parametrize("name", ["retry.txt", "retry", "retry.json"])
def test_a_new_job_named_other_than_yaml_or_csv_is_a_usage_error(tmp_path: Path, name: str) -> None:
    ledger_path = make_ledger(write_job(tmp_path / "job.yaml", fleet(1)), ["rejected"])
    result = invoke("retry-failed", ledger_path, "-o", tmp_path / name)
    assert result.exit_code == 2
    assert "name the new job file .yaml, .yml or .csv" in result.stderr
    assert not (tmp_path / name).exists()


def test_an_existing_new_job_is_refused_unless_forced(tmp_path: Path) -> None:
    ledger_path = make_ledger(write_job(tmp_path / "job.yaml", fleet(1)), ["rejected"])
    out = tmp_path / "retry.yaml"
    out.write_text("mine\n", encoding="utf-8")

    refused = invoke("retry-failed", ledger_path, "-o", out)
    assert refused.exit_code == 2
    assert refused.stderr.strip() == f"error: {out} exists: give --force to write over it"
    assert out.read_text(encoding="utf-8") == "mine\n"

    forced = invoke("retry-failed", ledger_path, "-o", out, "--force")
    assert forced.exit_code == 0, forced.stderr
    assert len(read_back(out)) == 1


def test_a_new_job_in_a_directory_that_does_not_exist_is_a_usage_error(tmp_path: Path) -> None:
    ledger_path = make_ledger(write_job(tmp_path / "job.yaml", fleet(1)), ["rejected"])
    result = invoke("retry-failed", ledger_path, "-o", tmp_path / "nowhere" / "retry.yaml")
    assert result.exit_code == 2
    assert f"there is no directory {tmp_path / 'nowhere'}" in result.stderr


def test_the_job_the_ledger_belongs_to_is_never_written_over(tmp_path: Path) -> None:
    job_path = write_job(tmp_path / "job.yaml", fleet(1))
    before = job_path.read_bytes()
    ledger_path = make_ledger(job_path, ["rejected"])
    result = invoke("retry-failed", ledger_path, "-o", job_path, "--force")
    assert result.exit_code == 2
    assert "is the job file" in result.stderr
    assert job_path.read_bytes() == before


def test_a_missing_ledger_is_a_clear_error(tmp_path: Path) -> None:
    result = invoke("retry-failed", tmp_path / "nowhere.ledger.db", "-o", tmp_path / "r.yaml")
    assert result.exit_code == 1
    assert result.stderr.strip() == f"error: {tmp_path / 'nowhere.ledger.db'}: no such ledger"
    assert not (tmp_path / "r.yaml").exists()


def test_a_file_that_is_not_a_ledger_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "job.yaml.ledger.db"
    bad.write_bytes(b"not a database at all\n" * 100)
    result = invoke("retry-failed", bad, "-o", tmp_path / "r.yaml")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: {bad}")
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "r.yaml").exists()


def test_a_ledger_with_nothing_to_retry_writes_nothing(tmp_path: Path) -> None:
    ledger_path = make_ledger(
        write_job(tmp_path / "job.yaml", fleet(3)), ["delivered", "waiting", "in_doubt"]
    )
    result = invoke("retry-failed", ledger_path, "-o", tmp_path / "retry.yaml")
    assert result.exit_code == 0
    assert "nothing to retry" in result.stderr
    assert "left out 1 command that may be at OneNET already (1 in doubt)" in result.stderr
    assert not (tmp_path / "retry.yaml").exists()


def test_commands_of_the_job_missing_from_the_ledger_are_pointed_out(tmp_path: Path) -> None:
    job_path = write_job(tmp_path / "job.yaml", fleet(1))
    ledger_path = make_ledger(job_path, ["rejected"], unregistered=2)
    result = invoke("retry-failed", ledger_path, "-o", tmp_path / "retry.yaml")
    assert result.exit_code == 0
    assert (
        "2 commands of the job are not in the ledger (a run stopped before it registered them):"
        f" `dispatcher run {job_path}` sends them"
    ) in result.stderr
    assert len(read_back(tmp_path / "retry.yaml")) == 1


def test_a_run_with_no_recorded_end_is_pointed_out(tmp_path: Path) -> None:
    job_path = write_job(tmp_path / "job.yaml", fleet(2))
    ledger_path = make_ledger(job_path, ["rejected", "pending"], finished=False)
    result = invoke("retry-failed", ledger_path, "-o", tmp_path / "retry.yaml")
    assert result.exit_code == 0
    assert "the latest run on" in result.stderr and "has no recorded end" in result.stderr

"""retry-failed: which commands of a ledger are sent again, the job file written for them (read
back exactly as written), and the command line, in-process and against the emulator."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from dispatcher.emulator.server import Emulator, Faults, serve
from dispatcher.errors import JobFileError, LedgerError
from dispatcher.job.model import Command, load_job, validate_job
from dispatcher.job.writer import JobWriter, job_format
from dispatcher.ledger.sqlite import Ledger
from dispatcher.ledger.store import Delivery, Status
from dispatcher.model import WriteValue
from dispatcher.report.retry import Reason, RetryTally, passed_times, reason_of, retries
from dispatcher.times import BEIJING, format_onenet, parse_timespec
from tests.support.cli import dispatcher_async, invoke
from tests.support.e2e import fleet, imei
from tests.support.retry import FATES, T, make_ledger, write_job

AT = datetime(2030, 1, 1, 12, 0, tzinfo=BEIJING)  # hypothesis' times all lie after it

SENT_AGAIN = {
    "rejected": Reason.REJECTED,
    "failed": Reason.FAILED,
    "expired": Reason.EXPIRED,
    "pending": Reason.NOT_SENT,
    "never woke": Reason.DELIVERY_EXPIRED,
    "device error": Reason.DELIVERY_FAILED,
    "failed 7": Reason.DELIVERY_FAILED,
    "failed 8": Reason.DELIVERY_FAILED,
}
LEFT_OUT = sorted(set(FATES) - set(SENT_AGAIN))


# --- building jobs and ledgers ---------------------------------------------------------------


def reasons_by_imei(ledger_path: Path, now: datetime = AT) -> tuple[dict[str, Reason], RetryTally]:
    tally = RetryTally()
    with Ledger.open(ledger_path, read_only=True) as ledger:
        found = {r.row.command.imei: r.reason for r in retries(ledger, tally, now=now)}
    return found, tally


# --- running the command line ----------------------------------------------------------------


# --- which commands are sent again -----------------------------------------------------------


@pytest.mark.parametrize(("fate", "reason"), SENT_AGAIN.items())
def test_each_kind_of_command_that_did_not_get_through_is_sent_again_with_its_reason(
    tmp_path: Path, fate: str, reason: Reason
) -> None:
    devices = fleet(2)
    ledger = make_ledger(write_job(tmp_path / "job.yaml", devices), [fate, "delivered"])
    found, tally = reasons_by_imei(ledger)
    assert found == {devices[0]: reason}
    assert tally.reasons[reason] == tally.total == 1


@pytest.mark.parametrize("fate", LEFT_OUT)
def test_commands_that_got_through_may_yet_or_may_be_at_onenet_are_left_out(
    tmp_path: Path, fate: str
) -> None:
    devices = fleet(2)
    ledger = make_ledger(write_job(tmp_path / "job.yaml", devices), [fate, "rejected"])
    found, tally = reasons_by_imei(ledger)
    assert found == {devices[1]: Reason.REJECTED}
    assert tally.rows == 2
    status = FATES[fate][0]
    expected = 1 if status in (Status.IN_DOUBT, Status.IN_FLIGHT) else 0
    assert sum(tally.unsettled.values()) == expected


def test_retired_rows_are_never_sent_again(tmp_path: Path) -> None:
    devices = fleet(2)
    job_path = write_job(tmp_path / "job.yaml", devices)
    ledger_path = make_ledger(job_path, ["rejected", "rejected"])
    kept = [c for c in load_job(job_path).commands() if c.imei == devices[1]]
    with Ledger.open(ledger_path) as ledger:
        ledger.compare(kept, apply=True)  # the first device left the job: its row is retired
        (retired,) = ledger.rows(retired=True)
    assert reason_of(retired) is None
    found, _ = reasons_by_imei(ledger_path)
    assert found == {devices[1]: Reason.REJECTED}


@pytest.mark.parametrize(
    ("valid_time", "expired_time", "passed"),
    [
        (None, "+2d", ()),
        ("+1h", "+2d", ()),
        (None, "2030-01-01T11:59:59", ("expired_time",)),
        (None, "2030-01-01T12:00:00", ("expired_time",)),  # at now: OneNET refuses it too
        (None, "2030-01-01T12:00:01", ()),
        ("2030-01-01T03:00:00Z", "+2d", ("valid_time",)),  # 11:00 UTC+8
        ("2030-01-01T03:00:00+08:00", "2030-01-01T04:00:00", ("valid_time", "expired_time")),
        ("2030-01-01T05:00:00Z", "2030-01-02T00:00:00", ()),  # 13:00 UTC+8
    ],
)
def test_absolute_times_that_have_passed_are_found_and_relative_ones_never(
    tmp_path: Path, valid_time: str | None, expired_time: str, passed: tuple[str, ...]
) -> None:
    ledger_path = make_ledger(write_job(tmp_path / "job.yaml", fleet(1)), ["rejected"])
    with Ledger.open(ledger_path, read_only=True) as ledger:
        (row,) = ledger.rows()
    valid = None if valid_time is None else parse_timespec(valid_time)
    cmd = replace(row.command, valid_time=valid, expired_time=parse_timespec(expired_time))
    row = replace(row, command=cmd)
    assert passed_times(row, AT) == passed


# --- the job file writer ---------------------------------------------------------------------

_CONTROL = [
    chr(c) for c in [*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), *range(0x7F, 0xA0)]
]
_TRICKY = [
    "yes", "no", "on", "off", "y", "n", "true", "~", "null", "Null", "007", "0x1F", "1e3", "1_000",
    "0o17", ".inf", "-.nan", "12:30:00", "2030-01-01", '"quoted"', "'single'", "a,b", "a, b",
    " lead", "trail ", "  ", "- item", "key: value", "#hash", "a #b", "&anchor", "*alias", "!tag",
    "%YAML", "@at", "`tick", "|", ">", "? q", "[1, 2]", "{a: 1}", "\n", "\r\n", "\r", "\t",
    "x\n\ny", "x \n y", "end\n", "\ufeffbom", "\u2028sep", "\u00e9t\u00e9", "\u6c34\u8868",
    "\U0001f600", "sep=,", "...", "---",
]  # fmt: skip
_ARGS = st.one_of(
    st.none(),
    st.sampled_from(_TRICKY),
    st.text(st.characters(exclude_categories=("Cs",), exclude_characters=_CONTROL), min_size=1),
    st.lists(st.sampled_from(_TRICKY), min_size=2, max_size=4).map("".join),
)


def _absolute(minute: int, style: int, day: int = 1) -> str:
    at = datetime(2030, 1, day, 13 if day == 1 else 0, minute, tzinfo=BEIJING)
    utc = at - timedelta(hours=8)
    return [
        format_onenet(at),
        format_onenet(at).replace("T", " "),
        format_onenet(utc) + "Z",
        format_onenet(at) + "+08:00",
        f"{at:%Y/%m/%d %H:%M}",
    ][style]


def command(
    imei: str,
    obj_id: int,
    obj_inst_id: int | None,
    res_id: int | None,
    expired_time: str,
    *,
    valid_time: str | None = None,
    args: str | None = None,
    retry: int = 3,
    timeout: int = 25,
    trigger_msg: int = 7,
) -> Command:
    """A command as a job file gives it: times as written (``+2d`` or absolute)."""
    valid = None if valid_time is None else parse_timespec(valid_time)
    return Command(imei, obj_id, obj_inst_id, res_id, parse_timespec(expired_time), valid, args,
                   retry, timeout, trigger_msg)  # fmt: skip


# valid_time is at most 13:59 on the day of AT, expired_time at least 14:00: always later.
_VALID = st.one_of(
    st.none(),
    st.integers(1, 59).map(lambda m: f"+{m}m"),
    st.builds(_absolute, st.integers(0, 59), st.integers(0, 4)),
)
_EXPIRED = st.one_of(
    st.sampled_from(["+2h", "+6h", "+2d", "+1d12h", "+36h30m", "+ 3d"]),
    st.builds(_absolute, st.integers(0, 59), st.integers(0, 4), st.integers(3, 28)),
)
_TARGET = st.tuples(
    st.builds(
        command,
        imei=st.just(""),  # made distinct per list below
        obj_id=st.integers(0, 65535),
        obj_inst_id=st.integers(0, 65535),
        res_id=st.integers(0, 65535),
        expired_time=_EXPIRED,
        valid_time=_VALID,
        args=_ARGS,
        retry=st.integers(0, 10),
        timeout=st.integers(5, 40),
        trigger_msg=st.integers(1, 7),
    ),
    st.lists(st.text(max_size=20), max_size=2).map(tuple),  # its notes
)
_TARGETS = st.lists(_TARGET, min_size=1, max_size=6).map(
    lambda ts: [(replace(c, imei=imei(n * 7919)), notes) for n, (c, notes) in enumerate(ts)]
)


def fields_of(cmd: Command) -> Command:
    """What a command read back gives for each field (not where it was read, nor its key)."""
    return replace(cmd, source="", line=0, key="", occurrence=0)


def read_back(path: Path) -> list[Command]:
    """Every command of a job file, checked at AT; any error fails the test (warnings pass)."""
    commands = []
    for item in load_job(path).scan(at=AT):
        if isinstance(item, Command):
            commands.append(fields_of(item))
        else:
            assert item.warning, str(item)
    return commands


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(targets=_TARGETS, name=st.one_of(st.none(), st.text(min_size=1, max_size=30)))
@pytest.mark.parametrize("suffix", [".yaml", ".csv"])
def test_a_written_job_file_reads_back_every_field_exactly_as_written(
    tmp_path: Path, suffix: str, targets: list[tuple[Command, tuple[str, ...]]], name: str | None
) -> None:
    path = tmp_path / f"retry{suffix}"
    with JobWriter(path, force=True) as writer:
        for target, notes in targets:
            writer.add(target, notes)
        written = writer.commit(name=name, comment=["from x.ledger.db", "odd\x00 \r\n text"])
    assert (written.commands, written.devices, written.repeats) == (
        len(targets),
        len(targets),
        False,
    )
    assert read_back(path) == [t for t, _ in targets]
    job = load_job(path)
    if suffix == ".yaml" and name is not None:
        assert job.name == name
    assert validate_job(job, at=AT).ok


def test_yaml_writes_every_field_and_no_defaults(tmp_path: Path) -> None:
    path = tmp_path / "retry.yaml"
    with JobWriter(path) as writer:
        writer.add(command(imei(1), 3, 0, 4, "+2d", args="yes"), ("rejected (errno 1): a:3",))
        writer.commit(name="bench-retry", comment=["the header"])
    assert path.read_text(encoding="utf-8") == (
        "# the header\n"
        "job: bench-retry\n"
        "targets:\n"
        "# rejected (errno 1): a:3\n"
        f"- imei: '{imei(1)}'\n"
        "  obj_id: 3\n"
        "  obj_inst_id: 0\n"
        "  res_id: 4\n"
        "  args: 'yes'\n"
        "  expired_time: +2d\n"
        "  retry: 3\n"
        "  timeout: 25\n"
        "  trigger_msg: 7\n"
    )


def test_a_repeated_command_makes_yaml_allow_duplicates_and_is_refused_in_csv(
    tmp_path: Path,
) -> None:
    twice = [
        command(imei(1), 3, 0, 4, "+2d", args="go"),
        command(imei(1), 3, 0, 4, "+3d", args="go"),
    ]
    with JobWriter(tmp_path / "retry.yaml") as writer:
        for target in twice:
            writer.add(target)
        written = writer.commit()
    assert (written.commands, written.devices, written.repeats) == (2, 1, True)
    assert "allow_duplicates: true\n" in (tmp_path / "retry.yaml").read_text(encoding="utf-8")
    assert read_back(tmp_path / "retry.yaml") == twice
    with JobWriter(tmp_path / "retry.csv") as writer:
        for target in twice:
            writer.add(target)
        with pytest.raises(JobFileError, match=r"repeats a command.*name it \.yaml"):
            writer.commit()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["retry.yaml"]


def test_the_writer_never_writes_over_a_file_unless_forced(tmp_path: Path) -> None:
    path = tmp_path / "retry.csv"
    path.write_text("keep me\n", encoding="utf-8")
    with JobWriter(path) as writer:
        writer.add(command(imei(1), 3, 0, 4, "+2d"))
        with pytest.raises(JobFileError, match="exists: give --force"):
            writer.commit()
    assert path.read_text(encoding="utf-8") == "keep me\n"
    with JobWriter(path, force=True) as writer:
        writer.add(command(imei(1), 3, 0, 4, "+2d"))
        writer.commit()
    assert read_back(path) == [command(imei(1), 3, 0, 4, "+2d")]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["retry.csv"]  # no temporary file left


def test_a_writer_closed_without_commit_writes_nothing(tmp_path: Path) -> None:
    with JobWriter(tmp_path / "retry.yaml") as writer:
        writer.add(command(imei(1), 3, 0, 4, "+2d"))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("name", "fmt"),
    [("a.yaml", "yaml"), ("a.YML", "yaml"), ("a.csv", "csv"), ("a.txt", None), ("a", None)],
)
def test_the_file_name_chooses_the_format(name: str, fmt: str | None) -> None:
    assert job_format(Path(name)) == fmt


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


# --- end to end, against the emulator --------------------------------------------------------


async def test_the_retry_job_sends_exactly_the_commands_that_did_not_get_through(
    tmp_path: Path,
) -> None:
    devices = fleet(6, start=500)
    foreign = {devices[1], devices[4]}  # rejected with errno 1: not in the product, yet
    job_path = write_job(tmp_path / "fleet.yaml", devices)
    ledger_path = tmp_path / "fleet.yaml.ledger.db"
    emulator = Emulator(Faults(foreign_imeis=frozenset(foreign)))
    async with serve(emulator) as url:
        first = await dispatcher_async(
            "run", job_path.name, "--base-url", url, "--rate", "0", cwd=tmp_path
        )
        assert first.code == 3, first.stderr
        # What `dispatcher status` would read: one device never woke, one failed the command,
        # one ran it, one command was cancelled.
        with Ledger.open(ledger_path) as ledger:
            keys = {row.command.imei: row.key for row in ledger.rows()}
            ledger.record_delivery(
                [
                    Delivery(keys[devices[0]], 4, None, None, None, None, T),
                    Delivery(keys[devices[2]], 6, "FAILED", None, None, None, T),
                    Delivery(keys[devices[3]], 5, "SUCCESS", None, None, None, T),
                    Delivery(keys[devices[5]], 2, None, None, None, None, T),
                ]
            )
        made = invoke("retry-failed", ledger_path, "-o", tmp_path / "retry.yaml")
        assert made.exit_code == 0, made.stderr
        assert invoke("validate", tmp_path / "retry.yaml").exit_code == 0

        before, posts = len(emulator.accepted()), emulator.stats()["posts"]
        emulator.faults = Faults()  # the two devices joined the product
        second = await dispatcher_async(
            "run", "retry.yaml", "--base-url", url, "--rate", "0", cwd=tmp_path
        )

    assert second.code == 0, second.stderr
    retried = [devices[0], devices[1], devices[2], devices[4]]
    arrived = emulator.accepted()[before:]
    assert sorted(c.imei for c in arrived) == sorted(retried)  # each once (sent concurrently)
    assert emulator.stats()["posts"] == posts + len(retried)
    original = {c.imei: c for c in load_job(job_path).commands()}
    for stored in arrived:
        cmd = original[stored.imei]
        assert (stored.obj_id, stored.obj_inst_id, stored.res_id) == (3303, 0, 5605)
        assert (stored.args, stored.retry, stored.timeout, stored.trigger_msg) == (
            cmd.args, cmd.retry, cmd.timeout, cmd.trigger_msg,
        )  # fmt: skip
        assert stored.valid_time is None


async def test_commands_handed_to_a_retry_job_are_never_sent_by_the_original_nor_retried_twice(
    tmp_path: Path,
) -> None:
    devices = fleet(4, start=700)
    job_path = write_job(tmp_path / "fleet.yaml", devices)
    # A run stopped early: two commands accepted, one failed, one never sent.
    ledger_path = make_ledger(
        job_path, ["delivered", "failed", "delivered", "pending"], finished=True
    )
    made = invoke("retry-failed", ledger_path, "-o", tmp_path / "retry.yaml")
    assert made.exit_code == 0, made.stderr
    with Ledger.open(ledger_path, read_only=True) as ledger:
        rows = {r.command.imei: r for r in ledger.rows()}
    handed = {devices[1], devices[3]}
    assert {i for i, r in rows.items() if r.retried_in} == handed
    assert {rows[i].status for i in handed} == {Status.RETRIED}
    assert all(rows[i].retried_in == str((tmp_path / "retry.yaml").resolve()) for i in handed)
    # A second retry-failed on the same ledger hands nothing over again.
    again = invoke("retry-failed", ledger_path, "-o", tmp_path / "retry2.yaml")
    assert again.exit_code == 0
    assert not (tmp_path / "retry2.yaml").exists()
    assert "already handed to the retry job" in again.stderr
    emulator = Emulator()
    async with serve(emulator) as url:
        original = await dispatcher_async(
            "run", job_path.name, "--base-url", url, "--rate", "0", cwd=tmp_path
        )
        retry = await dispatcher_async(
            "run", "retry.yaml", "--base-url", url, "--rate", "0", cwd=tmp_path
        )
    assert original.code == 0, original.stderr
    assert retry.code == 0, retry.stderr
    # The original job sent nothing (its failed and unsent commands went to the retry job);
    # the retry job sent each of them once.
    assert sorted(c.imei for c in emulator.accepted()) == sorted(handed)


# --- the new job never takes the place of the original's files, nor outlives a failed hand-over


def write_csv_job(directory: Path, imeis: list[str]) -> Path:
    """A YAML job whose targets are in ``fleet.csv`` beside it."""
    (directory / "fleet.csv").write_text(
        "imei,args\n" + "".join(f"{device},go {n}\n" for n, device in enumerate(imeis)),
        encoding="utf-8",
    )
    job = directory / "job.yaml"
    job.write_text(
        "job: csv fleet\n"
        "defaults: {obj_id: 3303, obj_inst_id: 0, res_id: 5605, expired_time: '+2d'}\n"
        "targets_csv: fleet.csv\n",
        encoding="utf-8",
    )
    return job


@pytest.mark.parametrize("name", ["fleet.csv", "alias.csv"])
def test_the_targets_csv_of_the_job_is_never_written_over_even_with_force(
    tmp_path: Path, name: str
) -> None:
    ledger_path = make_ledger(write_csv_job(tmp_path, fleet(2)), ["rejected", "delivered"])
    csv_file = tmp_path / "fleet.csv"
    (tmp_path / "alias.csv").symlink_to(csv_file)
    before = csv_file.read_bytes()
    result = invoke("retry-failed", ledger_path, "-o", tmp_path / name, "--force")
    assert result.exit_code == 2
    assert "is the targets_csv of the job file" in result.stderr
    assert csv_file.read_bytes() == before
    with Ledger.open(ledger_path, read_only=True) as ledger:
        assert all(r.retried_in is None for r in ledger.rows())


def test_a_job_file_that_cannot_be_read_any_more_does_not_stop_the_retry(tmp_path: Path) -> None:
    job_path = write_csv_job(tmp_path, fleet(1))
    ledger_path = make_ledger(job_path, ["rejected"])
    job_path.write_text("job: [not, a, job\n", encoding="utf-8")
    result = invoke("retry-failed", ledger_path, "-o", tmp_path / "retry.yaml")
    assert result.exit_code == 0, result.stderr
    assert len(read_back(tmp_path / "retry.yaml")) == 1


def test_a_failed_hand_over_leaves_no_new_job_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger_path = make_ledger(write_job(tmp_path / "job.yaml", fleet(2)), ["rejected", "pending"])

    def refuse(self: Ledger, keys: object, job_path: str) -> None:
        raise LedgerError(f"{self.path}: cannot record the retry job: disk I/O error")

    monkeypatch.setattr(Ledger, "hand_over", refuse)
    out = tmp_path / "retry.yaml"
    result = invoke("retry-failed", ledger_path, "-o", out)
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: {ledger_path}: cannot record the retry job")
    assert f"{out} not written, nothing handed over: run retry-failed again" in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary


def test_a_hand_over_is_recorded_whole_or_not_at_all(tmp_path: Path) -> None:
    ledger_path = make_ledger(write_job(tmp_path / "job.yaml", fleet(2)), ["rejected", "pending"])
    # The second half of the hand-over (pending -> retried) fails: the first must not stay.
    conn = sqlite3.connect(ledger_path)
    conn.execute(
        "CREATE TRIGGER no_retried BEFORE UPDATE OF status ON commands"
        " WHEN NEW.status = 'retried' BEGIN SELECT RAISE(ABORT, 'refused'); END"
    )
    conn.close()
    with Ledger.open(ledger_path) as ledger:
        keys = [r.key for r in ledger.rows()]
        with pytest.raises(LedgerError, match="refused"):
            ledger.hand_over(keys, str(tmp_path / "retry.yaml"))
        assert [(r.retried_in, r.status) for r in ledger.rows()] == [
            (None, Status.REJECTED),
            (None, Status.PENDING),
        ]


def test_a_hand_over_of_a_key_the_ledger_does_not_hold_records_nothing(tmp_path: Path) -> None:
    ledger_path = make_ledger(write_job(tmp_path / "job.yaml", fleet(2)), ["rejected", "pending"])
    with Ledger.open(ledger_path) as ledger:
        keys = [r.key for r in ledger.rows()]
        with pytest.raises(LedgerError, match="1 of 3 keys are not in the ledger"):
            ledger.hand_over([*keys, "no-such-key"], str(tmp_path / "retry.yaml"))
        assert all(r.retried_in is None for r in ledger.rows())
        assert [r.status for r in ledger.rows()] == [Status.REJECTED, Status.PENDING]

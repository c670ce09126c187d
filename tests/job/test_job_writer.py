"""The job file writer: a written job reads back every field exactly as written, YAML writes no
defaults, a repeated command, never over a file unless forced, nothing without a commit, the
format from the file name."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from dispatcher.errors import JobFileError
from dispatcher.job.model import Command, load_job, validate_job
from dispatcher.job.writer import JobWriter, job_format
from dispatcher.times import BEIJING, format_onenet, parse_timespec
from tests.support.e2e import imei
from tests.support.retry import AT, read_back

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

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta

import pytest

from dispatcher.times import (
    BEIJING,
    ServerClock,
    TimeSpec,
    describe_offset,
    format_onenet,
    now_beijing,
    parse_onenet,
    parse_timespec,
)

SEND = datetime(2030, 1, 1, 12, 0, 0, tzinfo=BEIJING)


def test_now_beijing_is_aware_utc8_to_the_second() -> None:
    now = now_beijing(clock=lambda: 1_700_000_000.75)
    assert now.utcoffset() == timedelta(hours=8)
    assert now.microsecond == 0
    assert format_onenet(now) == "2023-11-15T06:13:20"


def test_format_onenet_converts_aware_times_to_utc8() -> None:
    assert format_onenet(datetime(2030, 1, 1, 0, 0, 0, tzinfo=UTC)) == "2030-01-01T08:00:00"


def test_format_onenet_keeps_naive_times_as_written() -> None:
    assert format_onenet(datetime(2030, 1, 1, 0, 0, 5, 999)) == "2030-01-01T00:00:05"


@pytest.mark.parametrize(
    "text", ["2017-08-28 11:34:58", "2017-08-28T11:34:58", " 2017-08-28 11:34:58 "]
)
def test_parse_onenet_reads_both_separators_as_utc8(text: str) -> None:
    assert parse_onenet(text) == datetime(2017, 8, 28, 11, 34, 58, tzinfo=BEIJING)


@pytest.mark.parametrize(
    "text", ["", "2017-08-28", "2017-08-28 11:34", "yesterday", "2017-13-01 00:00:00"]
)
def test_parse_onenet_refuses_anything_else(text: str) -> None:
    with pytest.raises(ValueError):
        parse_onenet(text)


@pytest.mark.parametrize(
    ("text", "offset"),
    [
        ("+90s", timedelta(seconds=90)),
        ("+30m", timedelta(minutes=30)),
        ("+6h", timedelta(hours=6)),
        ("+2d", timedelta(days=2)),
        ("+1d12h", timedelta(days=1, hours=12)),
        ("+ 1h 30m", timedelta(hours=1, minutes=30)),
    ],
)
def test_relative_times_are_offsets_from_sending(text: str, offset: timedelta) -> None:
    spec = parse_timespec(text)
    assert spec == TimeSpec(text.strip(), offset=offset)
    assert spec.resolve(SEND) == SEND + offset


@pytest.mark.parametrize("text", ["+0m", "+", "+2w", "+-3h", "+1.5h", "+99999d", "+h"])
def test_bad_relative_times_are_refused_with_a_hint(text: str) -> None:
    with pytest.raises(ValueError, match=r"\+"):
        parse_timespec(text)


def test_naive_time_is_utc8_and_kept_as_written() -> None:
    spec = parse_timespec("2030-01-02T03:04:05")
    assert spec.at == datetime(2030, 1, 2, 3, 4, 5, tzinfo=BEIJING)
    assert spec.text == "2030-01-02T03:04:05"
    assert format_onenet(spec.resolve(SEND)) == "2030-01-02T03:04:05"


@pytest.mark.parametrize(
    ("text", "sent"),
    [
        ("2030-01-02T00:00:00Z", "2030-01-02T08:00:00"),
        ("2030-01-02T00:00:00+00:00", "2030-01-02T08:00:00"),
        ("2030-01-02T10:30:00+05:30", "2030-01-02T13:00:00"),
        ("2030-01-02 00:00:00-0500", "2030-01-02T13:00:00"),
        ("2030-01-02T08:00:00+08:00", "2030-01-02T08:00:00"),
        ("2030-01-02T00:00:00.123Z", "2030-01-02T08:00:00"),
    ],
)
def test_zoned_times_are_converted_to_utc8(text: str, sent: str) -> None:
    spec = parse_timespec(text)
    assert spec.text == text
    assert format_onenet(spec.resolve(SEND)) == sent


def test_spreadsheet_style_dates_are_accepted() -> None:
    assert format_onenet(parse_timespec("2030/1/2 3:04").resolve(SEND)) == "2030-01-02T03:04:00"


@pytest.mark.parametrize(
    "value", ["", "  ", "2030-01-02", "2030-02-30T00:00:00", "soon", "2030-01-02T00:00:00+25:00", 5]
)
def test_bad_absolute_times_are_refused(value: object) -> None:
    with pytest.raises(ValueError):
        parse_timespec(value)


def test_datetime_and_date_objects_are_accepted() -> None:
    assert parse_timespec(datetime(2030, 1, 2, 3, 4, 5)).at == datetime(
        2030, 1, 2, 3, 4, 5, tzinfo=BEIJING
    )
    aware = parse_timespec(datetime(2030, 1, 2, 0, 0, tzinfo=UTC))
    assert aware.at is not None and format_onenet(aware.at) == "2030-01-02T08:00:00"
    assert parse_timespec(date(2030, 1, 2)).at == datetime(2030, 1, 2, tzinfo=BEIJING)


def test_timespec_needs_exactly_one_of_at_and_offset() -> None:
    with pytest.raises(ValueError):
        TimeSpec("x")
    with pytest.raises(ValueError):
        TimeSpec("x", at=SEND, offset=timedelta(1))


def _answers(
    offset: float, start: float, every: float, count: int, rtt: float
) -> list[tuple[float, float, float]]:
    """(Date, sent, received) of answers from a server whose clock is ours plus ``offset``."""
    found = []
    for i in range(count):
        sent = start + i * every
        made = sent + rtt / 2
        found.append((float(math.floor(made + offset)), sent, sent + rtt))
    return found


def test_the_server_clock_narrows_to_the_true_offset_at_a_steady_rate() -> None:
    clock = ServerClock(lambda: 0.0)
    for shown, sent, received in _answers(100.0, 1_700_000_000.37, 0.007, 600, 0.002):
        clock.observe(shown, sent, received)
    assert clock.known
    assert abs(clock.offset - 100.0) < 0.01  # not half a second off, as a lone reading may be


def test_one_reading_gives_the_middle_of_what_it_allows() -> None:
    clock = ServerClock(lambda: 0.0)
    clock.observe(1_700_000_100.0, 1_700_000_000.2, 1_700_000_000.4)
    assert clock.offset == pytest.approx(100.0 + 0.5 - 0.3)


def test_a_stepped_server_clock_is_followed() -> None:
    clock = ServerClock(lambda: 0.0)
    for shown, sent, received in _answers(100.0, 1_700_000_000.0, 0.05, 100, 0.002):
        clock.observe(shown, sent, received)
    for shown, sent, received in _answers(40.0, 1_700_000_010.0, 0.05, 100, 0.002):
        clock.observe(shown, sent, received)
    assert abs(clock.offset - 40.0) < 0.05


def test_offsets_are_described_for_people() -> None:
    assert describe_offset(359.6) == "6m00s ahead of"
    assert describe_offset(-125.2) == "2m05s behind"
    assert describe_offset(4.04) == "4.0s ahead of"

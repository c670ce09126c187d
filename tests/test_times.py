from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, strategies as st

from dispatcher.times import (
    BEIJING,
    WINDOW_MIN_LEFT,
    DailyWindow,
    TimeSpec,
    format_onenet,
    now_beijing,
    parse_onenet,
    parse_timespec,
    parse_window,
    parse_zone,
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


def test_timespec_needs_exactly_one_of_at_offset_and_window() -> None:
    with pytest.raises(ValueError):
        TimeSpec("x")
    with pytest.raises(ValueError):
        TimeSpec("x", at=SEND, offset=timedelta(1))
    with pytest.raises(ValueError):
        TimeSpec("x", offset=timedelta(1), window=DailyWindow(time(2), time(6)))


# --- daily windows ---------------------------------------------------------------------------

BERLIN = ZoneInfo("Europe/Berlin")


def bj(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=BEIJING)  # type: ignore[arg-type, misc]


def window_at(daily: str, send: datetime, zone: str | None = None) -> tuple[datetime, datetime]:
    """Start and end as the two specs resolve them (each on its own) for a send at ``send``."""
    window = parse_window(daily, zone)
    return window.spec("start").resolve(send), window.spec("end").resolve(send)


@pytest.mark.parametrize(
    ("send", "start", "end"),
    [
        (bj(2030, 1, 1, 23, 0), bj(2030, 1, 1, 22, 0), bj(2030, 1, 2, 2, 0)),  # open
        (bj(2030, 1, 2, 1, 0), bj(2030, 1, 1, 22, 0), bj(2030, 1, 2, 2, 0)),  # open, past 0:00
        (bj(2030, 1, 2, 3, 0), bj(2030, 1, 2, 22, 0), bj(2030, 1, 3, 2, 0)),  # closed: tonight's
        (bj(2030, 1, 1, 21, 59), bj(2030, 1, 1, 22, 0), bj(2030, 1, 2, 2, 0)),  # about to open
        (bj(2030, 1, 1, 22, 0), bj(2030, 1, 1, 22, 0), bj(2030, 1, 2, 2, 0)),  # just opened
        (bj(2030, 1, 2, 1, 59, 0), bj(2030, 1, 1, 22, 0), bj(2030, 1, 2, 2, 0)),  # 60 s left
        (bj(2030, 1, 2, 1, 59, 1), bj(2030, 1, 2, 22, 0), bj(2030, 1, 3, 2, 0)),  # 59 s: next
        (bj(2030, 1, 31, 23, 0), bj(2030, 1, 31, 22, 0), bj(2030, 2, 1, 2, 0)),  # month end
        (bj(2030, 1, 31, 3, 0), bj(2030, 1, 31, 22, 0), bj(2030, 2, 1, 2, 0)),
        (bj(2030, 12, 31, 23, 30), bj(2030, 12, 31, 22, 0), bj(2031, 1, 1, 2, 0)),  # year end
        (bj(2031, 1, 1, 0, 30), bj(2030, 12, 31, 22, 0), bj(2031, 1, 1, 2, 0)),
        (bj(2030, 2, 28, 23, 0), bj(2030, 2, 28, 22, 0), bj(2030, 3, 1, 2, 0)),  # no Feb 29
        (bj(2028, 2, 28, 23, 0), bj(2028, 2, 28, 22, 0), bj(2028, 2, 29, 2, 0)),  # leap year
        (bj(2028, 2, 29, 3, 0), bj(2028, 2, 29, 22, 0), bj(2028, 3, 1, 2, 0)),
    ],
)
def test_a_window_crossing_midnight_resolves_to_the_next_one_with_a_minute_left(
    send: datetime, start: datetime, end: datetime
) -> None:
    assert window_at("22:00-02:00", send) == (start, end)


@pytest.mark.parametrize(
    ("send", "start", "end"),
    [
        (bj(2030, 1, 1, 1, 0), bj(2030, 1, 1, 2, 0), bj(2030, 1, 1, 6, 0)),
        (bj(2030, 1, 1, 4, 0), bj(2030, 1, 1, 2, 0), bj(2030, 1, 1, 6, 0)),
        (bj(2030, 1, 1, 5, 59, 0), bj(2030, 1, 1, 2, 0), bj(2030, 1, 1, 6, 0)),
        (bj(2030, 1, 1, 5, 59, 1), bj(2030, 1, 2, 2, 0), bj(2030, 1, 2, 6, 0)),
        (bj(2030, 1, 1, 7, 0), bj(2030, 1, 2, 2, 0), bj(2030, 1, 2, 6, 0)),
        (bj(2030, 12, 31, 7, 0), bj(2031, 1, 1, 2, 0), bj(2031, 1, 1, 6, 0)),
        (bj(2028, 2, 28, 7, 0), bj(2028, 2, 29, 2, 0), bj(2028, 2, 29, 6, 0)),
    ],
)
def test_a_window_within_a_day_resolves_to_the_next_one_with_a_minute_left(
    send: datetime, start: datetime, end: datetime
) -> None:
    assert window_at("02:00-06:00", send) == (start, end)


def test_a_window_resolves_to_utc8_whatever_its_zone() -> None:
    start, end = window_at("02:00-06:00", bj(2030, 1, 1, 12, 0), "Europe/Berlin")
    assert (start, end) == (bj(2030, 1, 1, 9, 0), bj(2030, 1, 1, 13, 0))  # CET is UTC+1
    assert start.utcoffset() == end.utcoffset() == timedelta(hours=8)
    assert window_at("02:00-06:00", bj(2030, 1, 1, 12, 0), "UTC-5") == (
        bj(2030, 1, 1, 15, 0),
        bj(2030, 1, 1, 19, 0),
    )


def test_a_naive_send_time_is_utc8() -> None:
    window = parse_window("02:00-06:00")
    assert window.next(datetime(2030, 1, 1, 3, 0)) == (bj(2030, 1, 1, 2, 0), bj(2030, 1, 1, 6, 0))


def berlin(*parts: int, fold: int = 0) -> datetime:
    return datetime(*parts, tzinfo=BERLIN, fold=fold)  # type: ignore[arg-type, misc]


@pytest.mark.parametrize(
    ("daily", "start", "end"),
    [
        # 2030-03-31: Berlin's clocks go from 02:00 CET straight to 03:00 CEST.
        ("01:00-05:00", berlin(2030, 3, 31, 1, 0), berlin(2030, 3, 31, 5, 0)),  # 3 hours long
        ("02:30-04:00", berlin(2030, 3, 31, 3, 0), berlin(2030, 3, 31, 4, 0)),  # opens at the jump
        ("01:00-02:30", berlin(2030, 3, 31, 1, 0), berlin(2030, 3, 31, 3, 0)),  # closes at it
        ("02:10-02:50", berlin(2030, 4, 1, 2, 10), berlin(2030, 4, 1, 2, 50)),  # none that day
        ("22:00-02:30", berlin(2030, 3, 30, 22, 0), berlin(2030, 3, 31, 3, 0)),
    ],
)
def test_on_the_spring_dst_day_a_skipped_time_is_the_moment_the_clocks_jump(
    daily: str, start: datetime, end: datetime
) -> None:
    send = berlin(2030, 3, 30, 12, 0)
    assert window_at(daily, send, "Europe/Berlin") == (start, end)


@pytest.mark.parametrize(
    ("daily", "start", "end"),
    [
        # 2030-10-27: Berlin's clocks go from 03:00 CEST back to 02:00 CET.
        ("01:00-05:00", berlin(2030, 10, 27, 1, 0), berlin(2030, 10, 27, 5, 0)),  # 5 hours long
        ("02:15-02:45", berlin(2030, 10, 27, 2, 15), berlin(2030, 10, 27, 2, 45)),  # the first
        ("02:30-04:00", berlin(2030, 10, 27, 2, 30), berlin(2030, 10, 27, 4, 0)),
        ("00:00-02:30", berlin(2030, 10, 27, 0, 0), berlin(2030, 10, 27, 2, 30)),
    ],
)
def test_on_the_autumn_dst_day_a_repeated_time_is_its_first_occurrence(
    daily: str, start: datetime, end: datetime
) -> None:
    send = berlin(2030, 10, 26, 12, 0)
    got = window_at(daily, send, "Europe/Berlin")
    # (Aware datetimes in a repeated hour never equal those of another zone: PEP 495.)
    assert [t.timestamp() for t in got] == [start.timestamp(), end.timestamp()]


def test_the_autumn_window_lasts_an_hour_longer_by_the_clock_it_spans() -> None:
    start, end = window_at("01:00-05:00", berlin(2030, 10, 26, 12, 0), "Europe/Berlin")
    assert end - start == timedelta(hours=5)
    start, end = window_at("01:00-05:00", berlin(2030, 3, 30, 12, 0), "Europe/Berlin")
    assert end - start == timedelta(hours=3)
    start, end = window_at("01:00-05:00", berlin(2030, 6, 1, 12, 0), "Europe/Berlin")
    assert end - start == timedelta(hours=4)


@pytest.mark.parametrize(
    "text",
    [
        "window 02:00-06:00 start",
        "window 02:00-06:00 end",
        "window 22:00-02:00 Europe/Berlin start",
        "window 22:00-02:00 Europe/Berlin end",
        "window 02:00-06:00 +01:00 end",
        "window 02:00-06:00 -05:30 start",
        "window 23:59-00:00 America/New_York end",
    ],
)
def test_window_texts_parse_and_round_trip_exactly(text: str) -> None:
    spec = parse_timespec(text)
    assert spec.window is not None and spec.at is None and spec.offset is None
    assert spec.text == text
    assert spec.edge == text.rsplit(" ", 1)[1]
    assert spec.window.spec(spec.edge) == spec
    assert parse_timespec(spec.text) == spec


@pytest.mark.parametrize(
    ("daily", "zone", "text"),
    [
        ("02:00-06:00", None, "window 02:00-06:00 start"),
        ("2:00 - 6:00", "UTC+8", "window 02:00-06:00 start"),
        ("02:00-06:00", "+08:00", "window 02:00-06:00 start"),
        ("02:00-06:00", "Asia/Shanghai", "window 02:00-06:00 Asia/Shanghai start"),
        ("02:00-06:00", "UTC+1", "window 02:00-06:00 +01:00 start"),
        ("02:00-06:00", "utc-5:30", "window 02:00-06:00 -05:30 start"),
        ("02:00-06:00", "UTC", "window 02:00-06:00 +00:00 start"),
        ("02:00-06:00", "Europe/Berlin", "window 02:00-06:00 Europe/Berlin start"),
    ],
)
def test_a_window_is_written_one_way_in_its_spec(daily: str, zone: str | None, text: str) -> None:
    spec = parse_window(daily, zone).spec("start")
    assert spec.text == text
    assert parse_timespec(text) == spec


@pytest.mark.parametrize(
    "text",
    [
        "window",
        "window 02:00-06:00",
        "window 02:00-06:00 begin",
        "window 02:00 start",
        "window 02:00-02:00 start",
        "window 24:00-02:00 start",
        "window 02:00-06:00 Mars/Base start",
        "window 02:00-06:00 Europe/Berlin x end",
        "windows 02:00-06:00 start",
    ],
)
def test_bad_window_texts_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_timespec(text)


@pytest.mark.parametrize(
    ("text", "offset", "name"),
    [
        (None, timedelta(hours=8), ""),
        ("", timedelta(hours=8), ""),
        ("UTC+8", timedelta(hours=8), ""),
        ("+01:00", timedelta(hours=1), "+01:00"),
        ("+0100", timedelta(hours=1), "+01:00"),
        ("GMT-3", timedelta(hours=-3), "-03:00"),
        ("Z", timedelta(0), "+00:00"),
        ("Asia/Kolkata", timedelta(hours=5, minutes=30), "Asia/Kolkata"),
    ],
)
def test_zones_are_iana_names_or_fixed_offsets(
    text: str | None, offset: timedelta, name: str
) -> None:
    zone, got = parse_zone(text)
    assert got == name
    assert zone.utcoffset(datetime(2030, 1, 1)) == offset


@pytest.mark.parametrize(
    "text", ["Mars/Base", "UTC+24", "+5:99", "../etc/passwd", "/etc/localtime"]
)
def test_bad_zones_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_zone(text)


def test_a_misspelt_zone_gets_a_suggestion() -> None:
    with pytest.raises(ValueError, match=r"did you mean Europe/Berlin\?"):
        parse_zone("europe/berlin")


_SENDS = st.datetimes(
    min_value=datetime(1990, 1, 1), max_value=datetime(2090, 1, 1), timezones=st.just(UTC)
)
_MINUTES = st.integers(0, 24 * 60 - 1)
_FIXED: list[tzinfo] = [BEIJING, UTC, timezone(timedelta(hours=-9, minutes=-30))]


@given(_SENDS, _MINUTES, _MINUTES, st.sampled_from(_FIXED))
def test_in_a_fixed_zone_the_window_is_whole_and_the_first_with_a_minute_left(
    send: datetime, opens: int, closes: int, zone: tzinfo
) -> None:
    if opens == closes:
        return
    window = DailyWindow(time(opens // 60, opens % 60), time(closes // 60, closes % 60), zone)
    start, end = window.next(send)
    assert start < end
    assert end - send >= WINDOW_MIN_LEFT
    assert end - start == window.length
    assert end - send < WINDOW_MIN_LEFT + timedelta(days=1)  # no earlier window would do
    local_start, local_end = start.astimezone(zone), end.astimezone(zone)
    assert (local_start.hour, local_start.minute) == (window.opens.hour, window.opens.minute)
    assert (local_end.hour, local_end.minute) == (window.closes.hour, window.closes.minute)
    assert start.utcoffset() == timedelta(hours=8)


_ZONES = st.sampled_from(["Europe/Berlin", "America/New_York", "Australia/Lord_Howe"])


@given(_SENDS, _MINUTES, _MINUTES, _ZONES)
def test_in_a_zone_with_dst_the_window_is_the_first_with_a_minute_left(
    send: datetime, opens: int, closes: int, name: str
) -> None:
    if opens == closes:
        return
    window = parse_window(f"{opens // 60}:{opens % 60:02d}-{closes // 60}:{closes % 60:02d}", name)
    start, end = window.next(send)
    assert start < end
    assert end - send >= WINDOW_MIN_LEFT
    assert end - send < WINDOW_MIN_LEFT + timedelta(days=2)
    assert abs((end - start) - window.length) <= timedelta(hours=1)  # a DST change within
    # The first: a moment just before the window's end (less than a minute left) gives a later one.
    later_start, later_end = window.next(end - WINDOW_MIN_LEFT + timedelta(seconds=1))
    assert later_start >= end and later_end > end
    spec = window.spec("end")
    assert parse_timespec(spec.text) == spec

"""A write's String, Opaque, Time and Objlnk values, resources not in the registry, and values
that are errors."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from dispatcher.job.values import Err
from dispatcher.job.writes import describe_value
from dispatcher.model import WriteValue
from tests.support.write_values import (
    CLOCK,
    DIMMER,
    EDRX,
    LINK,
    MAKER,
    NEW_YEAR_2026,
    ON_OFF,
    PACKAGE,
    URI,
    VENDOR,
    ok,
    typed,
    warning,
)

DEC_1_2026_2AM_BEIJING = 1796061600  # 2026-12-01T02:00:00+08:00 = 2026-11-30T18:00:00Z


def error(ids: tuple[int, int], text: str, infer: bool = True) -> str:
    value = typed(ids, text, infer)
    assert isinstance(value, Err), value
    assert value.keep is None, f"a warning, not an error: {value.message}"
    return value.message


def test_string_is_sent_as_written_not_stripped() -> None:
    assert ok(URI, "coap://x") == WriteValue(1, "coap://x")
    assert ok(MAKER, "  Acme ") == WriteValue(0, "  Acme ")
    assert ok(MAKER, "40") == WriteValue(0, "40")  # the registry says String: no inference
    assert ok(MAKER, "true") == WriteValue(0, "true")


def test_string_range_bounds_its_utf8_length() -> None:
    assert ok(URI, "a" * 255) == WriteValue(1, "a" * 255)
    message, keep = warning(URI, "a" * 256)
    assert "256 bytes" in message and message.endswith("outside Package URI's range 0..255")
    assert keep == WriteValue(1, "a" * 256)
    assert ok(URI, "中" * 85) == WriteValue(1, "中" * 85)  # 255 bytes
    assert "258 bytes" in warning(URI, "中" * 86)[0]


def test_a_quoted_empty_string_is_a_value_but_an_empty_cell_is_not() -> None:
    assert ok(URI, "", infer=False) == WriteValue(1, "")  # '' in YAML: clears the package URI
    assert error(URI, "") == "is empty: give the value to write"


@pytest.mark.parametrize(
    ("text", "val"), [("0a0b", "0a0b"), ("0x0A0B", "0a0b"), (" DEADbeef ", "deadbeef")]
)
def test_opaque_is_lowercase_hex_with_type_1(text: str, val: str) -> None:
    value = ok(PACKAGE, text)
    assert value == WriteValue(0, val, 1)
    assert value.item() == {"res_id": 0, "type": 1, "val": val}


@pytest.mark.parametrize(
    ("text", "why"),
    [("0a0", "odd number"), ("0x0a0b0", "odd number"), ("0a 0b", "spaces"), ("zz", "not hex")],
)
def test_bad_hex_is_a_warning_sent_as_a_plain_string(text: str, why: str) -> None:
    message, keep = warning(PACKAGE, text)
    assert why in message and "(5/0 Firmware Update · Package)" in message
    assert keep == WriteValue(0, text) and keep.type is None


def test_opaque_range_bounds_the_byte_count() -> None:
    assert ok(EDRX, "ab" * 255) == WriteValue(7, "ab" * 255, 1)
    message, keep = warning(EDRX, "ab" * 256)
    assert "256 bytes" in message and message.endswith("range 0..255")
    assert keep == WriteValue(7, "ab" * 256, 1)


def test_an_explicit_empty_opaque_is_zero_bytes() -> None:
    assert ok(PACKAGE, "0x") == WriteValue(0, "", 1)
    assert describe_value(WriteValue(0, "", 1)) == "hex (0 bytes)"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1767225600", NEW_YEAR_2026),
        ("0", 0),
        ("2026-01-01T00:00:00Z", NEW_YEAR_2026),
        ("2026-01-01T08:00:00+08:00", NEW_YEAR_2026),
        ("2026-12-01T02:00:00+08:00", DEC_1_2026_2AM_BEIJING),
        ("2026-12-01T02:00:00", DEC_1_2026_2AM_BEIJING),  # no zone: Beijing time
        ("2026-12-01 02:00:00", DEC_1_2026_2AM_BEIJING),
        ("2026-11-30T13:00:00-05:00", DEC_1_2026_2AM_BEIJING),
    ],
)
def test_time_is_unix_seconds_with_type_2(text: str, seconds: int) -> None:
    value = ok(CLOCK, text)
    assert value == WriteValue(13, seconds, 2) and type(value.val) is int


def test_the_constants_here_are_the_right_instants() -> None:
    assert datetime(2026, 1, 1, tzinfo=UTC).timestamp() == NEW_YEAR_2026
    assert datetime(2026, 11, 30, 18, tzinfo=UTC).timestamp() == DEC_1_2026_2AM_BEIJING


@pytest.mark.parametrize("text", ["tomorrow", "-5", "2026-02-30T00:00:00", "1969-12-31T00:00:00Z"])
def test_not_a_time_is_a_warning(text: str) -> None:
    message, keep = warning(CLOCK, text)
    assert (
        message.startswith(f"{text!r} is not a Time") and "(3/13 Device · Current Time)" in message
    )
    assert keep.type is None


def test_objlnk_is_obj_colon_instance() -> None:
    assert ok(LINK, " 3:0 ") == WriteValue(17, "3:0")
    assert ok(LINK, "65535:65535") == WriteValue(17, "65535:65535")
    assert "is not an Objlnk" in warning(LINK, "65536:0")[0]
    assert warning(LINK, "3/0")[1] == WriteValue(17, "3/0")


@pytest.mark.parametrize(
    ("text", "val"),
    [
        ("true", True),
        ("False", False),
        ("yes", True),
        ("OFF", False),
        ("12", 12),
        ("-3", -3),
        ("1.5", 1.5),
        ("-.25", -0.25),
        ("coap://x", "coap://x"),
        ("0012", "0012"),  # leading zeros: a code, kept as written
        ("1.2.3", "1.2.3"),
        (" x ", " x "),
    ],
)
def test_unknown_resource_is_inferred(text: str, val: str | int | float | bool) -> None:
    value = ok(VENDOR, text)
    assert value == WriteValue(1, val) and type(value.val) is type(val)


def test_unknown_resource_without_infer_is_a_string_as_written() -> None:
    for text in ["true", "12", "1.5", " x ", ""]:
        assert ok(VENDOR, text, infer=False) == WriteValue(1, text)


def test_unknown_resource_never_warns() -> None:
    for text in ["9" * 40, "1e999", "0x0a", "nan", "  padded  "]:
        assert isinstance(typed(VENDOR, text), WriteValue)


@pytest.mark.parametrize("ids", [DIMMER, ON_OFF, PACKAGE, CLOCK, VENDOR])
def test_an_empty_value_is_an_error(ids: tuple[int, int]) -> None:
    assert error(ids, "") == "is empty: give the value to write"
    assert error(ids, "   ") == "is empty: give the value to write"


def test_text_utf8_cannot_hold_is_an_error() -> None:
    assert "surrogate" in error(URI, "\ud800")
    assert "surrogate" in error(VENDOR, "x\udc00", infer=False)

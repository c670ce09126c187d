"""A write's values: typed by the LwM2M registry, encoded for OneNET's body, warnings and errors."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest
from hypothesis import given, strategies as st

from dispatcher.job.values import Err
from dispatcher.job.writes import MAX_BODY_BYTES, body_problem, describe_value, typed_value
from dispatcher.lwm2m import resource
from dispatcher.model import WriteValue, body_text

ON_OFF = (3311, 5850)  # Light Control · On/Off, Boolean RW
DIMMER = (3311, 5851)  # Light Control · Dimmer, Integer RW 0..100
URI = (5, 1)  # Firmware Update · Package URI, String 0..255
PACKAGE = (5, 0)  # Firmware Update · Package, Opaque W
CLOCK = (3, 13)  # Device · Current Time, Time RW
MAKER = (3, 0)  # Device · Manufacturer, String R, no range
UNSIGNED = (0, 16)  # LWM2M Security · DTLS/TLS Ciphersuite, Unsigned Integer, no range
FRACTION = (3200, 6050)  # Digital Input · Fractional Timestamp, Float 0..1
TEMPERATURE = (3303, 5700)  # Temperature · Sensor Value, Float, no range
EDRX = (10, 7)  # LWM2M Cellular Connectivity · eDRX parameters for Iu mode, Opaque 0..255
LINK = (0, 17)  # LWM2M Security · OSCORE Security Mode, Objlnk
VENDOR = (33000, 1)  # not in the registry
NEW_YEAR_2026 = 1767225600  # 2026-01-01T00:00:00Z
DEC_1_2026_2AM_BEIJING = 1796061600  # 2026-12-01T02:00:00+08:00 = 2026-11-30T18:00:00Z


def typed(ids: tuple[int, int], text: str, infer: bool = True) -> WriteValue | Err:
    return typed_value(ids[0], ids[1], text, infer)


def ok(ids: tuple[int, int], text: str, infer: bool = True) -> WriteValue:
    value = typed(ids, text, infer)
    assert isinstance(value, WriteValue), getattr(value, "message", value)
    return value


def warning(ids: tuple[int, int], text: str, infer: bool = True) -> tuple[str, WriteValue]:
    value = typed(ids, text, infer)
    assert isinstance(value, Err), value
    assert isinstance(value.keep, WriteValue), f"an error, not a warning: {value.message}"
    assert len(value.message) < 140 and not value.message.endswith(".")
    return value.message, value.keep


def error(ids: tuple[int, int], text: str, infer: bool = True) -> str:
    value = typed(ids, text, infer)
    assert isinstance(value, Err), value
    assert value.keep is None, f"a warning, not an error: {value.message}"
    return value.message


def test_the_ids_used_here_are_what_the_registry_says() -> None:
    expected = {
        ON_OFF: ("On/Off", "Boolean", ""),
        DIMMER: ("Dimmer", "Integer", "0..100"),
        URI: ("Package URI", "String", "0..255"),
        PACKAGE: ("Package", "Opaque", ""),
        CLOCK: ("Current Time", "Time", ""),
        MAKER: ("Manufacturer", "String", ""),
        UNSIGNED: ("DTLS/TLS Ciphersuite", "Unsigned Integer", ""),
        FRACTION: ("Fractional Timestamp", "Float", "0..1"),
        TEMPERATURE: ("Sensor Value", "Float", ""),
        EDRX: ("eDRX parameters for Iu mode", "Opaque", "0..255"),
        LINK: ("OSCORE Security Mode", "Objlnk", ""),
    }
    for (obj_id, res_id), (name, kind, limits) in expected.items():
        res = resource(obj_id, res_id)
        assert res is not None and (res.name, res.type, res.range) == (name, kind, limits)
    assert resource(*VENDOR) is None


# -- WriteValue and the body -------------------------------------------------------------------


def test_an_item_holds_type_only_when_given_and_in_onenet_order() -> None:
    assert list(WriteValue(5850, True).item().items()) == [("res_id", 5850), ("val", True)]
    assert list(WriteValue(0, "0a", 1).item().items()) == [
        ("res_id", 0),
        ("type", 1),
        ("val", "0a"),
    ]


def test_body_text_is_compact_json_in_order() -> None:
    values = [ok(ON_OFF, "on"), ok(CLOCK, "2026-01-01T00:00:00Z")]
    assert body_text(values) == (
        '{"data":[{"res_id":5850,"val":true},{"res_id":13,"type":2,"val":1767225600}]}'
    )


def test_body_text_keeps_unicode_as_utf8() -> None:
    text = body_text([ok(URI, "coap://例子")])
    assert text == '{"data":[{"res_id":1,"val":"coap://例子"}]}'
    assert orjson.loads(text) == {"data": [{"res_id": 1, "val": "coap://例子"}]}


def body_of(size: int) -> list[WriteValue]:
    """One string value whose body is exactly ``size`` bytes."""
    frame = len(body_text([WriteValue(1, "")]))
    return [WriteValue(1, "x" * (size - frame))]


def test_body_problem_at_the_limit_and_one_byte_over() -> None:
    assert MAX_BODY_BYTES == 2048
    at_limit, over = body_of(2048), body_of(2049)
    assert len(body_text(at_limit).encode()) == 2048
    assert body_problem(at_limit) is None
    assert body_problem(over) == "the write's body is 2,049 bytes; OneNET takes at most 2,048"


def test_body_problem_counts_utf8_bytes_not_characters() -> None:
    frame = len(body_text([WriteValue(1, "")]))
    chars = (2048 - frame) // 3 + 1  # fits in characters, not in bytes
    assert body_problem([WriteValue(1, "中" * chars)]) is not None
    assert body_problem([WriteValue(1, "x" * chars)]) is None


def test_describe_value_short_forms() -> None:
    assert describe_value(WriteValue(5850, True)) == "true"
    assert describe_value(WriteValue(5850, False)) == "false"
    assert describe_value(WriteValue(5851, 40)) == "40"
    assert describe_value(WriteValue(5851, 0.5)) == "0.5"
    assert describe_value(WriteValue(1, "coap://x")) == '"coap://x"'
    assert describe_value(WriteValue(0, "0a0b", 1)) == "hex 0a0b"
    assert describe_value(WriteValue(13, NEW_YEAR_2026, 2)) == "time 1767225600"


def test_describe_value_cuts_long_values() -> None:
    long_text = describe_value(WriteValue(1, "a" * 500))
    assert long_text.startswith('"aaa') and "…" in long_text and "500 chars" in long_text
    assert len(long_text) < 60
    long_hex = describe_value(WriteValue(0, "ab" * 400, 1))
    assert long_hex.startswith("hex abab") and "400 bytes" in long_hex and len(long_hex) < 60


# -- Integer --------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "val"), [("40", 40), (" 0 ", 0), ("+100", 100), ("007", 7)])
def test_integer_accepted_forms(text: str, val: int) -> None:
    value = ok(DIMMER, text)
    assert value == WriteValue(5851, val) and type(value.val) is int


def test_integer_is_typed_by_the_registry_even_when_quoted() -> None:
    assert ok(DIMMER, "40", infer=False) == WriteValue(5851, 40)


def test_not_an_integer_is_a_warning_sent_as_written() -> None:
    message, keep = warning(DIMMER, "abc")
    assert message == "'abc' is not an Integer (3311/5851 Light Control · Dimmer)"
    assert keep == WriteValue(5851, "abc")


def test_a_decimal_for_an_integer_is_a_warning_sent_as_inferred() -> None:
    message, keep = warning(DIMMER, "1.5")
    assert message.startswith("'1.5' is not an Integer")
    assert keep == WriteValue(5851, 1.5)
    _, quoted = warning(DIMMER, "1.5", infer=False)
    assert quoted == WriteValue(5851, "1.5")


def test_integer_out_of_range_is_a_warning_keeping_the_number() -> None:
    message, keep = warning(DIMMER, "140")
    assert message == "140 is outside Dimmer's range 0..100"
    assert keep == WriteValue(5851, 140)
    assert warning(DIMMER, "-1")[1] == WriteValue(5851, -1)


def test_integer_beyond_64_bits_is_a_warning_not_a_crash() -> None:
    message, keep = warning(DIMMER, "9" * 30)
    assert "64-bit" in message
    assert keep == WriteValue(5851, "9" * 30)  # too big for a JSON int64: sent as a string
    body_text([keep])  # orjson takes it


def test_unsigned_integer_refuses_a_negative() -> None:
    message, keep = warning(UNSIGNED, "-5")
    assert message.startswith("'-5' is not an Unsigned Integer (0/16 LWM2M Security")
    assert keep == WriteValue(16, -5)
    assert ok(UNSIGNED, "18446744073709551615") == WriteValue(16, 2**64 - 1)
    assert "64-bit" in warning(UNSIGNED, "18446744073709551616")[0]


@given(st.integers(min_value=0, max_value=100))
def test_any_integer_in_range_round_trips(n: int) -> None:
    assert typed_value(3311, 5851, str(n), True) == WriteValue(5851, n)


@given(st.integers(min_value=101, max_value=10**12) | st.integers(min_value=-(2**63), max_value=-1))
def test_any_integer_out_of_range_warns_and_keeps_it(n: int) -> None:
    value = typed_value(3311, 5851, str(n), True)
    assert isinstance(value, Err) and value.keep == WriteValue(5851, n)


# -- Float ----------------------------------------------------------------------------------


def test_float_accepted_forms() -> None:
    for text, val in [("21.5", 21.5), ("40", 40.0), ("-1e3", -1000.0), (".5", 0.5), ("2.", 2.0)]:
        value = ok(TEMPERATURE, text)
        assert value == WriteValue(5700, val) and type(value.val) is float


def test_not_a_float_is_a_warning() -> None:
    message, keep = warning(TEMPERATURE, "warm")
    assert message == "'warm' is not a Float (3303/5700 Temperature · Sensor Value)"
    assert keep == WriteValue(5700, "warm")
    assert warning(TEMPERATURE, "nan")[1] == WriteValue(5700, "nan")
    assert "too large for a Float" in warning(TEMPERATURE, "1e999")[0]


def test_float_range_is_checked() -> None:
    assert ok(FRACTION, "0.25") == WriteValue(6050, 0.25)
    assert ok(FRACTION, "1") == WriteValue(6050, 1.0)
    message, keep = warning(FRACTION, "1.5")
    assert message == "1.5 is outside Fractional Timestamp's range 0..1"
    assert keep == WriteValue(6050, 1.5)


# -- Boolean --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "val"),
    [
        ("true", True),
        ("FALSE", False),
        ("yes", True),
        ("No", False),
        ("on", True),
        ("OFF", False),
        ("1", True),
        ("0", False),
        (" true ", True),
    ],
)
def test_boolean_accepted_forms(text: str, val: bool) -> None:
    assert ok(ON_OFF, text) == WriteValue(5850, val)


def test_not_a_boolean_is_a_warning() -> None:
    message, keep = warning(ON_OFF, "maybe")
    assert (
        message
        == "'maybe' is not a Boolean: write true or false (3311/5850 Light Control · On/Off)"
    )
    assert keep == WriteValue(5850, "maybe")
    assert warning(ON_OFF, "2")[1] == WriteValue(5850, 2)  # as inferred


# -- String ---------------------------------------------------------------------------------


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


# -- Opaque ---------------------------------------------------------------------------------


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


# -- Time -----------------------------------------------------------------------------------


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


# -- other types ----------------------------------------------------------------------------


def test_objlnk_is_obj_colon_instance() -> None:
    assert ok(LINK, " 3:0 ") == WriteValue(17, "3:0")
    assert ok(LINK, "65535:65535") == WriteValue(17, "65535:65535")
    assert "is not an Objlnk" in warning(LINK, "65536:0")[0]
    assert warning(LINK, "3/0")[1] == WriteValue(17, "3/0")


# -- not in the registry ----------------------------------------------------------------------


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


# -- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize("ids", [DIMMER, ON_OFF, PACKAGE, CLOCK, VENDOR])
def test_an_empty_value_is_an_error(ids: tuple[int, int]) -> None:
    assert error(ids, "") == "is empty: give the value to write"
    assert error(ids, "   ") == "is empty: give the value to write"


def test_text_utf8_cannot_hold_is_an_error() -> None:
    assert "surrogate" in error(URI, "\ud800")
    assert "surrogate" in error(VENDOR, "x\udc00", infer=False)

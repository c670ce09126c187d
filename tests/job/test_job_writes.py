"""A write's values: the ids used, WriteValue and its body, Integer, Float and Boolean values."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, strategies as st

from dispatcher.job.values import Err
from dispatcher.job.writes import MAX_BODY_BYTES, body_problem, describe_value, typed_value
from dispatcher.lwm2m import resource
from dispatcher.model import WriteValue, body_text
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
    warning,
)

UNSIGNED = (0, 16)  # LWM2M Security · DTLS/TLS Ciphersuite, Unsigned Integer, no range
FRACTION = (3200, 6050)  # Digital Input · Fractional Timestamp, Float 0..1
TEMPERATURE = (3303, 5700)  # Temperature · Sensor Value, Float, no range


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

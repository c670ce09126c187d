"""The row checker's IMEI check digit, summed over bytes on its hot path, agrees with luhn_ok."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, strategies as st

from dispatcher.job.fields import RowChecker
from dispatcher.job.rows import EXPIRED, IMEI, NAMES, OBJ_ID, OBJ_INST_ID, RES_ID
from dispatcher.job.values import luhn_check_digit, luhn_ok

_AT = datetime(2030, 1, 1, tzinfo=UTC)
_CHECKER = RowChecker("f.csv", _AT, from_csv=True)
_STRICT = RowChecker("f.csv", _AT, from_csv=True, strict=True)  # a wrong check digit: an error


def _row(imei: str) -> tuple[str | None, ...]:
    raw: list[str | None] = [None] * len(NAMES)
    raw[IMEI], raw[OBJ_ID], raw[OBJ_INST_ID], raw[RES_ID], raw[EXPIRED] = imei, "5", "0", "2", "+2d"
    return tuple(raw)


@given(st.text("0123456789", min_size=15, max_size=15))
def test_a_fifteen_digit_imei_has_a_problem_exactly_when_its_check_digit_is_wrong(
    imei: str,
) -> None:
    checked, problems = _CHECKER.check(_row(imei), 2, 2)
    assert checked is not None  # a wrong check digit is a warning: still a command
    assert (problems is None) == luhn_ok(imei)
    if problems:
        assert [(p.field, p.warning) for p in problems] == [("imei", True)]


@given(st.text("0123456789", min_size=14, max_size=14))
def test_every_body_with_its_check_digit_passes_and_any_other_digit_fails(body: str) -> None:
    right = luhn_check_digit(body)
    for digit in range(10):
        checked, _ = _STRICT.check(_row(f"{body}{digit}"), 2, 2)
        assert (checked is not None) == (digit == right)

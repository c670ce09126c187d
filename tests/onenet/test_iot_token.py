"""The newer platform's token (TokenSource): its sign against fixed vectors and the formula, its
header, when it is made and renewed, its secrets, and what it refuses."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from dispatcher.onenet import (
    TokenSource,
    sign,
    token_header,
)
from tests.support.clocks import Clock
from tests.support.iot_api import (
    ACCESS_KEY,
    ET,
    NOW,
    RES,
    VECTORS,
    by_hand,
)


@pytest.mark.parametrize("method", ["md5", "sha1", "sha256"])
def test_the_sign_matches_a_fixed_vector_and_the_formula_by_hand(method: str) -> None:
    assert sign(ACCESS_KEY, RES, ET, method, "2022-05-01") == VECTORS[method]
    assert by_hand(method, ET) == VECTORS[method]
    assert sign(ACCESS_KEY, "userid/42", ET + 1, method, "2020-05-29") == by_hand(
        method, ET + 1, "userid/42", "2020-05-29"
    )


def test_the_header_url_encodes_every_value() -> None:
    header = token_header(ACCESS_KEY, RES, ET, "sha256", "2022-05-01")
    assert header == (
        "version=2022-05-01&res=products%2Fabc123&et=1767225600&method=sha256"
        "&sign=%2FbouZ8KItTlMtlNED92WW53DTbWtFXfd%2Fzeruaq%2BGIE%3D"
    )
    device = token_header(ACCESS_KEY, "products/p1/devices/d 1", ET, "sha1", "2022-05-01")
    assert "&res=products%2Fp1%2Fdevices%2Fd%201&" in device


def test_a_token_is_made_on_first_use_and_kept_until_renewal_is_due() -> None:
    clock = Clock(NOW)
    token = TokenSource(ACCESS_KEY, RES, clock=clock)
    assert (token.et, token.renewals) == (None, 0)
    assert token.secrets() == (ACCESS_KEY,)  # no sign yet; the key needs no encoding
    first = token.header()
    assert first == token_header(ACCESS_KEY, RES, ET + 3600, "sha1", "2022-05-01")
    assert token.et == ET + 3600
    clock.now = NOW + 3300  # exactly 300 s left: not yet
    assert token.header() == first
    clock.now = NOW + 3300.5  # less than 300 s left: a new token
    second = token.header()
    assert second != first
    assert (token.renewals, token.et) == (1, ET + 3300 + 3600)
    assert token.header() is second


def test_a_short_token_is_renewed_a_fifth_of_its_lifetime_ahead() -> None:
    clock = Clock(NOW + 0.25)
    token = TokenSource(ACCESS_KEY, RES, method="sha256", lifetime_s=100, clock=clock)
    token.header()
    assert token.et == ET + 100  # int(now + lifetime)
    clock.now = NOW + 80.0  # 20 s left: the margin is min(300, 100 / 5) = 20
    token.header()
    assert token.renewals == 0
    clock.now = NOW + 80.5
    token.header()
    assert (token.renewals, token.et) == (1, ET + 180)


def test_the_secrets_are_the_key_and_the_current_sign_raw_and_encoded() -> None:
    token = TokenSource(ACCESS_KEY, RES, method="sha256", lifetime_s=3600, clock=lambda: NOW - 3600)
    token.header()
    signed = VECTORS["sha256"]
    assert token.secrets() == (ACCESS_KEY, signed, quote(signed, safe=""))


@pytest.mark.parametrize(
    "key", ["not base64!", "", "c2VjcmV0LW", "wrong-key-with-dashes", "c2Vj cmV0", "密钥"]
)
def test_an_access_key_that_is_not_base64_is_refused_without_naming_it(key: str) -> None:
    with pytest.raises(ValueError, match="access key is not base64") as caught:
        TokenSource(key, RES)
    assert not key or key not in str(caught.value)
    with pytest.raises(ValueError) as caught:
        sign(key, RES, ET, "sha1", "2022-05-01")
    assert not key or key not in str(caught.value)


@pytest.mark.parametrize("method", ["sha512", "SHA1", "hmac-sha1", ""])
def test_an_unknown_method_is_refused(method: str) -> None:
    with pytest.raises(ValueError, match="is not one of md5, sha1, sha256") as caught:
        TokenSource(ACCESS_KEY, RES, method=method)
    assert ACCESS_KEY not in str(caught.value)
    with pytest.raises(ValueError, match="'\\*\\*\\*' is not one of") as caught:
        TokenSource(ACCESS_KEY, RES, method=ACCESS_KEY)  # arguments in the wrong place
    with pytest.raises(ValueError, match="is not one of"):
        sign(ACCESS_KEY, RES, ET, method, "2022-05-01")


@pytest.mark.parametrize(
    "res",
    ["products/", "products", "devices/d1", "products/a/b", "userid/", "userid/1/devices/x",
     "products/p/devices/", "products/p 1", "products/a\nb", "/products/abc", ACCESS_KEY],
)  # fmt: skip
def test_a_res_that_names_no_resource_is_refused_without_the_key(res: str) -> None:
    with pytest.raises(ValueError, match="is not userid/<uid>, products/<pid>") as caught:
        TokenSource(ACCESS_KEY, res)
    assert ACCESS_KEY not in str(caught.value)


@pytest.mark.parametrize("res", ["userid/123456", "products/abc123", "products/p1/devices/dev-01"])
def test_the_three_kinds_of_res_are_accepted(res: str) -> None:
    assert f"&res={quote(res, safe='')}&" in TokenSource(ACCESS_KEY, res).header()


@pytest.mark.parametrize("lifetime", [59.9, 0, -1, float("nan"), float("inf")])
def test_a_lifetime_under_a_minute_is_refused(lifetime: float) -> None:
    with pytest.raises(ValueError, match="at least 60 seconds"):
        TokenSource(ACCESS_KEY, RES, lifetime_s=lifetime)

"""The newer OneNET platform's signed token (iot-api.heclouds.com): ``sign``, ``token_header``
and ``TokenSource``, which makes the token and renews it before it expires.

OneNET refuses a token once its own clock passes ``et``, so a token is dated, and renewed, on
OneNET's clock: ``header(now)`` takes OneNET's now (the client passes its ``ServerClock``'s, read
off the answers' Date headers); a clock of our own that is behind OneNET's would otherwise make
tokens that lapse there before they are renewed here.

The rules (docs/onenet-api.md, "The newer OneNET API"): ``sign = base64(HMAC_method(key =
base64decode(access_key), msg = et + "\\n" + method + "\\n" + res + "\\n" + version))``; the header
is ``version=...&res=...&et=...&method=...&sign=...`` with every value URL-encoded (``/`` as %2F,
``+`` as %2B, ``=`` as %3D); a token past its ``et`` (Unix seconds) is refused.

No message here ever carries the access key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import math
import re
import time
from collections.abc import Callable
from typing import Final
from urllib.parse import quote

__all__ = ["METHODS", "MIN_LIFETIME", "TokenSource", "sign", "token_header"]

# The HMAC digests the platform takes, by the name the token carries.
METHODS: Final = {"md5": hashlib.md5, "sha1": hashlib.sha1, "sha256": hashlib.sha256}
MIN_LIFETIME: Final = 60.0  # seconds; a shorter token would be renewed on nearly every call
_RENEW_AHEAD: Final = 300.0  # seconds before et a token is renewed (a fifth of a short one)
# userid/{uid}, products/{pid} or products/{pid}/devices/{name}: the resource the key signs for.
# No whitespace: the signed message is newline-separated, a newline in res would forge it.
_RES = re.compile(r"userid/[^/\s]+|products/[^/\s]+(?:/devices/[^/\s]+)?")


def _key_bytes(access_key: str) -> bytes:
    """The access key decoded; ValueError (never naming the key) when it is not base64."""
    try:
        key = base64.b64decode(access_key.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error):
        key = b""
    if not key:
        raise ValueError("the access key is not base64 text (copy it whole from OneNET's console)")
    return key


def _shown(value: str, access_key: str, limit: int) -> str:
    """``value`` quoted for a message, the access key masked in it (arguments given in the
    wrong order must not put the key into a message), cut to ``limit`` characters."""
    text = value.replace(access_key, "***") if access_key else value
    return repr(text[:limit])


def _check_method(method: str, access_key: str) -> None:
    if method not in METHODS:
        known = ", ".join(METHODS)
        raise ValueError(f"token method {_shown(method, access_key, 20)} is not one of {known}")


def _sign(key: bytes, res: str, et: int, method: str, version: str) -> str:
    message = f"{et}\n{method}\n{res}\n{version}".encode()
    return base64.b64encode(hmac.digest(key, message, METHODS[method])).decode("ascii")


def sign(access_key: str, res: str, et: int, method: str, version: str) -> str:
    """``base64(HMAC_method(base64decode(access_key), f"{et}\\n{method}\\n{res}\\n{version}"))``."""
    _check_method(method, access_key)
    return _sign(_key_bytes(access_key), res, et, method, version)


def _header(res: str, et: int, method: str, version: str, signed: str) -> str:
    return (
        f"version={quote(version, safe='')}&res={quote(res, safe='')}&et={et}"
        f"&method={quote(method, safe='')}&sign={quote(signed, safe='')}"
    )


def token_header(access_key: str, res: str, et: int, method: str, version: str) -> str:
    """The ``authorization`` header's value: ``version=...&res=...&et=...&method=...&sign=...``,
    each value URL-encoded."""
    return _header(res, et, method, version, sign(access_key, res, et, method, version))


class TokenSource:
    """The token of one resource, made on first use and renewed before it expires.

    ``clock`` is this machine's clock; ``header(now)`` is given OneNET's now when it is known.
    """

    def __init__(
        self,
        access_key: str,
        res: str,
        *,
        method: str = "sha1",
        version: str = "2022-05-01",
        lifetime_s: float = 3600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._key = _key_bytes(access_key)
        _check_method(method, access_key)
        if not _RES.fullmatch(res):
            raise ValueError(
                f"token res {_shown(res, access_key, 80)} is not userid/<uid>, products/<pid> or "
                "products/<pid>/devices/<name>"
            )
        if not version or not version.isascii() or not version.isprintable() or " " in version:
            raise ValueError("token version must be printable ASCII, e.g. 2022-05-01")
        if not (math.isfinite(lifetime_s) and lifetime_s >= MIN_LIFETIME):
            raise ValueError(f"token lifetime must be at least {MIN_LIFETIME:g} seconds")
        self._access_key = access_key
        self.res, self.method, self.version = res, method, version
        self.lifetime_s = float(lifetime_s)
        self.clock = clock
        self._ahead = min(_RENEW_AHEAD, self.lifetime_s / 5)
        self._header: str | None = None
        self._sign = ""
        self._et = 0
        self.renewals = 0  # tokens made after the first

    @property
    def et(self) -> int | None:
        """The current token's expiry (Unix seconds), None before the first ``header()``."""
        return self._et if self._header is not None else None

    def header(self, now: float | None = None) -> str:
        """The current token as the ``authorization`` header's value; a new one when less than
        ``min(300, lifetime_s / 5)`` seconds are left before the current one's ``et``. ``now``
        is OneNET's now (Unix seconds; by default ``clock``'s): the token is dated, and renewed,
        on the clock that judges its ``et``."""
        if now is None:
            now = self.clock()
        header = self._header
        if header is not None and self._et - now >= self._ahead:
            return header
        et = int(now + self.lifetime_s)
        self._sign = _sign(self._key, self.res, et, self.method, self.version)
        self._et = et
        if header is not None:
            self.renewals += 1
        self._header = header = _header(self.res, et, self.method, self.version, self._sign)
        return header

    def secrets(self) -> tuple[str, ...]:
        """The texts to mask in messages: the access key and the current sign, raw and
        URL-encoded."""
        found = [self._access_key, quote(self._access_key, safe="")]
        if self._sign:
            found += [self._sign, quote(self._sign, safe="")]
        return tuple(dict.fromkeys(found))

    def __repr__(self) -> str:
        return f"TokenSource(res={self.res!r}, method={self.method!r}, et={self.et})"

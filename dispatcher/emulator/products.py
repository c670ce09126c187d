"""The products an emulator serves: who is let in (an api-key on ``/nbiot/...``, a signed token
of the newer platform on ``/nb-iot/...``), which devices are theirs, their throttle and the shape
of their answers.

The token is checked as the newer platform documents it (docs/onenet-api.md, "The newer OneNET
API"): the header ``version=...&res=...&et=...&method=...&sign=...``, every value URL-encoded
(decoded here as a form would be, so a ``+`` left unencoded reads as a space and the sign fails);
``sign = base64(HMAC_method(base64decode(access_key), et\\nmethod\\nres\\nversion))``; a token whose
``et`` has come on the server's clock is refused. Written apart from the client's
(dispatcher/onenet/auth.py), so that each checks the other.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import math
import re
from collections import deque
from collections.abc import Container
from dataclasses import dataclass, field
from typing import Final, Literal
from urllib.parse import unquote_plus

from dispatcher.emulator.state import Shape, StoredCommand, Throttle

__all__ = ["ANYONE", "METHODS", "VERSIONS", "Caller", "Product", "Tenant", "Token", "parse_token"]

METHODS: Final = {"md5": hashlib.md5, "sha1": hashlib.sha1, "sha256": hashlib.sha256}
VERSIONS: Final = frozenset({"2022-05-01", "2020-05-29", "2018-10-31"})  # current, then older
_RES = re.compile(r"userid/[^/\s]+|products/[^/\s]+(?:/devices/[^/\s]+)?")
_FIELDS: Final = frozenset({"version", "res", "et", "method", "sign"})
_MAX_HEADER: Final = 1024  # characters; a real token is about 150


def _decode_key(access_key: str) -> bytes | None:
    try:
        key = base64.b64decode(access_key.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error):
        return None
    return key or None


@dataclass(frozen=True, slots=True)
class Product:
    """One product: its api-key (``/nbiot/...`` calls) and/or its access key and token ``res``
    (``/nb-iot/...`` calls), its devices (None: any), its own throttle, its answers' shape, and
    the errno its device calls answer when it may not list devices."""

    api_key: str | None = None
    access_key: str | None = None  # base64, as OneNET's console shows it
    res: str | None = None  # what its tokens name: products/{pid}, userid/{uid}, ...
    imeis: frozenset[str] | None = None  # None: any device is in it; others get errno 1
    throttle_rps: float | None = None  # admitted creates per sliding second; more are throttled
    throttle_mode: Literal["errno7", "http429"] = "errno7"
    answer_shape: Shape = "errno"  # "code": {"code", "msg", "data"}
    list_errno: int | None = None  # every device call answers this errno (no list permission)

    def __post_init__(self) -> None:
        if not self.api_key and not self.access_key:
            raise ValueError("a product needs an api_key, or an access_key and its res")
        if (self.access_key is None) != (self.res is None):
            raise ValueError("a product's access_key and res come together")
        if self.access_key is not None and _decode_key(self.access_key) is None:
            raise ValueError("a product's access_key must be base64 text")
        if self.res is not None and not _RES.fullmatch(self.res):
            raise ValueError(
                "a product's res must be userid/<uid>, products/<pid> or "
                "products/<pid>/devices/<name>"
            )
        rps = self.throttle_rps
        if rps is not None and not (math.isfinite(rps) and rps > 0):
            raise ValueError("throttle_rps must be positive")
        if self.throttle_mode not in ("errno7", "http429"):
            raise ValueError("throttle_mode must be 'errno7' or 'http429'")
        if self.answer_shape not in ("errno", "code"):
            raise ValueError("answer_shape must be 'errno' or 'code'")
        errno = self.list_errno
        if errno is not None and (type(errno) is not int or errno <= 0):
            raise ValueError("list_errno must be a positive errno")
        if self.imeis is not None and not isinstance(self.imeis, frozenset):
            object.__setattr__(self, "imeis", frozenset(self.imeis))


@dataclass(frozen=True, slots=True)
class Token:
    """A token as the ``authorization`` header carries it, decoded (not yet checked)."""

    version: str
    res: str
    et: int
    method: str
    sign: str

    def signed_with(self, key: bytes) -> bool:
        """Whether ``sign`` is this token's HMAC under ``key`` (compared in constant time)."""
        message = f"{self.et}\n{self.method}\n{self.res}\n{self.version}".encode()
        expected = base64.b64encode(hmac.digest(key, message, METHODS[self.method]))
        return hmac.compare_digest(expected, self.sign.encode())


def parse_token(header: str | None) -> Token | None:
    """The token of an ``authorization`` header, or None when it is malformed: not exactly the
    five fields once each, an unknown version or method, an ``et`` that is not Unix seconds."""
    if not header or len(header) > _MAX_HEADER or not header.isascii():
        return None
    values: dict[str, str] = {}
    for part in header.split("&"):
        name, sep, value = part.partition("=")
        if not sep or name in values or name not in _FIELDS:
            return None
        values[name] = unquote_plus(value)
    if len(values) != len(_FIELDS):
        return None
    et = values["et"]
    if values["version"] not in VERSIONS or values["method"] not in METHODS:
        return None
    if not (et.isascii() and et.isdigit() and len(et) <= 12) or not values["sign"]:
        return None
    return Token(values["version"], values["res"], int(et), values["method"], values["sign"])


@dataclass(frozen=True, slots=True)
class Caller:
    """Who a follow-up call answers for: the product (None: no products, every command is
    seen) and the shape of its answers."""

    product: str | None = None
    shape: Shape = "errno"

    def sees(self, cmd: StoredCommand) -> bool:
        """Whether the command was created in the caller's product."""
        return self.product is None or cmd.product == self.product


ANYONE: Final = Caller()  # the caller when the emulator serves no products


class _Outside:
    """The imeis outside a product: not among its ``imeis``, or among the foreign ones."""

    __slots__ = ("foreign", "imeis")

    def __init__(self, imeis: frozenset[str] | None, foreign: frozenset[str]) -> None:
        self.imeis, self.foreign = imeis, foreign

    def __contains__(self, imei: object) -> bool:
        return imei in self.foreign or (self.imeis is not None and imei not in self.imeis)


@dataclass(slots=True)
class Tenant:
    """One product being served: its settings, throttle window, arrivals and counters."""

    name: str
    product: Product
    max_arrivals: int = 1_000_000
    key: bytes | None = field(init=False, default=None)  # the access key decoded
    caller: Caller = field(init=False, default=ANYONE)  # who its follow-up calls answer for
    throttle: Throttle = field(default_factory=Throttle)
    arrivals: deque[float] = field(default_factory=deque)  # monotonic times of create calls
    posts: int = 0
    accepted: int = 0
    throttled: int = 0
    auth_failed: int = 0

    def __post_init__(self) -> None:
        access_key = self.product.access_key
        self.key = None if access_key is None else _decode_key(access_key)
        self.arrivals = deque(maxlen=self.max_arrivals)
        self.caller = Caller(self.name, self.product.answer_shape)

    @property
    def shape(self) -> Shape:
        """The shape of this product's answers."""
        return self.product.answer_shape

    def outside(self, foreign: frozenset[str]) -> Container[str]:
        """The imeis that are not this product's (errno 1), ``foreign`` ones included."""
        if self.product.imeis is None:
            return foreign
        return _Outside(self.product.imeis, foreign)

    def counters(self) -> dict[str, int]:
        """posts, accepted, throttled and auth_failed (errno 1) of its create calls."""
        return {
            "posts": self.posts,
            "accepted": self.accepted,
            "throttled": self.throttled,
            "auth_failed": self.auth_failed,
        }

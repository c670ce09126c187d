"""What the newer platform's tests share: its access key, resource, times and host, a settable
clock, the requests they send and the answers in both shapes."""

from __future__ import annotations

import base64
import hashlib
import hmac

ACCESS_KEY = "c2VjcmV0LWFjY2Vzcy1rZXktZm9yLXRlc3Rz"  # base64 of b"secret-access-key-for-tests"
RES = "products/abc123"
ET = 1767225600  # 2026-01-01 00:00:00 UTC
NOW = float(ET)


# HMAC(base64decode(ACCESS_KEY), "1767225600\n<method>\nproducts/abc123\n2022-05-01"), base64:
# computed with `openssl dgst -<method> -mac HMAC -macopt hexkey:... -binary | base64`.
VECTORS = {
    "md5": "EtOHXxAApcAWe6rpDaIb6Q==",
    "sha1": "JgeDsbYtUyb/59NZf4mTKE2VceE=",
    "sha256": "/bouZ8KItTlMtlNED92WW53DTbWtFXfd/zeruaq+GIE=",
}


def by_hand(method: str, et: int, res: str = RES, version: str = "2022-05-01") -> str:
    """A token's sign computed by hand from the documented formula."""
    key = base64.b64decode(ACCESS_KEY)
    message = f"{et}\n{method}\n{res}\n{version}".encode()
    return base64.b64encode(hmac.new(key, message, getattr(hashlib, method)).digest()).decode()

"""What the runs table keeps of a run's settings and summary: plain JSON, with no secret in it."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Final

__all__ = ["to_json"]

_SECRET_NAME: Final = re.compile(r"(api_?key|secret|password|token)$")


def to_json(data: Mapping[str, object]) -> str:
    """``data`` as JSON, every secret-looking key dropped (the api-key must never be stored)."""
    return json.dumps(_scrub(data), default=_plain, ensure_ascii=False, sort_keys=True)


def _scrub(value: object) -> object:
    """Plain data with every secret-looking key dropped."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {
            str(k): _scrub(v)
            for k, v in value.items()
            if not _SECRET_NAME.search(str(k).lower().replace("-", "_"))
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [_scrub(v) for v in value]
    return value


def _plain(value: object) -> object:
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return type(value).__name__  # never repr(): it could carry a secret

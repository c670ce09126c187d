"""What the emulator's tests share: their moment and devices, an execute's parameters, a spy on the
emulator's sleeps, and ``Api``, an aiohttp caller of the emulator served over loopback."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from multidict import CIMultiDictProxy

IMEI = "861234567890123"
OTHER_IMEI = "869876543210987"
KEY = {"api-key": "secret-key"}
ARGS_BODY = b'{"args": "reboot"}'


def execute_params(**overrides: str | None) -> dict[str, str]:
    """An execute's query parameters; ``overrides`` replace some (None: left out)."""
    params: dict[str, str | None] = {
        "imei": IMEI,
        "obj_id": "3200",
        "obj_inst_id": "0",
        "res_id": "5750",
        "valid_time": "2024-05-01T12:30:00",
        "expired_time": "2024-05-02T12:00:00",
        "retry": "2",
        "timeout": "30",
        "trigger_msg": "5",
    }
    params.update(overrides)
    return {k: v for k, v in params.items() if v is not None}


@dataclass
class SleepSpy:
    """Records each delay the emulator asks for and returns at once."""

    delays: list[float] = field(default_factory=list)

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


@dataclass
class Api:
    """Calls to the emulator served over loopback, with the api-key unless told."""

    session: aiohttp.ClientSession

    async def call(
        self,
        method: str,
        path: str,
        params: Mapping[str, str],
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] = KEY,
    ) -> tuple[int, Any]:
        async with self.session.request(
            method, path, params=params, data=body, headers=headers
        ) as resp:
            if resp.content_type == "application/json":
                return resp.status, await resp.json()
            return resp.status, await resp.text()

    async def send(
        self,
        overrides: Mapping[str, str | None],
        body: bytes | None = ARGS_BODY,
        headers: Mapping[str, str] = KEY,
    ) -> tuple[int, Any]:
        params = execute_params(**overrides)
        return await self.call("POST", "/nbiot/execute/offline", params, body=body, headers=headers)

    async def post(
        self, *, body: bytes | None = ARGS_BODY, headers: Mapping[str, str] = KEY, **kw: str | None
    ) -> tuple[int, Any]:
        return await self.send(kw, body, headers)

    async def uuid(self, *, body: bytes | None = ARGS_BODY, **kw: str | None) -> str:
        status, doc = await self.send(kw, body)
        assert (status, doc["errno"]) == (200, 0), doc
        return str(doc["data"]["uuid"])

    async def get(self, path: str, **params: str) -> Any:
        status, doc = await self.call("GET", path, params)
        assert status == 200
        return doc

    async def raw(
        self, method: str, path: str, params: Mapping[str, str], body: bytes | None = None
    ) -> tuple[int, CIMultiDictProxy[str], bytes]:
        """Status, headers and the body as sent (not inflated when the session does not)."""
        async with self.session.request(
            method, path, params=params, data=body, headers=KEY
        ) as resp:
            return resp.status, resp.headers, await resp.read()


EXECUTE = "/nbiot/execute/offline"

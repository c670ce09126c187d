"""A test server for notifications: DingTalk, WeCom and Feishu robots and a plain webhook on one
loopback port, each answering as the service does, DingTalk's and Feishu's signatures checked as
their documentation says (computed here from the documents' own recipe, not with the package's
signing.py); and a route that never answers (a webhook that hangs). Every request is recorded.

Paths: /dingtalk/robot/send?access_token=TOKEN, /wecom/cgi-bin/webhook/send?key=KEY,
/feishu/open-apis/bot/v2/hook/HOOK, /hook, /hang.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

TOKEN = "dingtoken-0123456789abcdef"  # DingTalk's access_token
DING_SECRET = "SECdingsecret0123456789abcdef"
WECOM_KEY = "wecomkey-0123-4567-89ab-cdef01234567"
FEISHU_HOOK = "feishuhook-0123456789abcdef"
FEISHU_SECRET = "feishusecret0123456789ab"
SECRETS = (TOKEN, DING_SECRET, WECOM_KEY, FEISHU_HOOK, FEISHU_SECRET)
ENV = {
    "DING_TOKEN": TOKEN,
    "DING_SECRET": DING_SECRET,
    "WECOM_KEY": WECOM_KEY,
    "FEISHU_HOOK": FEISHU_HOOK,
    "FEISHU_SECRET": FEISHU_SECRET,
}


@dataclass(frozen=True, slots=True)
class Received:
    """One request the server got: which service, its query, its JSON body, and whether the
    service would have taken it (``refused``: why not)."""

    service: str
    query: dict[str, str]
    body: Any
    refused: str | None = None


@dataclass
class Webhooks:
    """The services' state: what they received, and the hanging requests to let go."""

    received: list[Received] = field(default_factory=list)
    hung: int = 0
    _release: asyncio.Event = field(default_factory=asyncio.Event)

    def of(self, service: str) -> list[Received]:
        """What ``service`` received, in order."""
        return [r for r in self.received if r.service == service]

    def app(self) -> web.Application:
        """The aiohttp application serving every route."""
        app = web.Application()
        app.router.add_post("/dingtalk/robot/send", self._dingtalk)
        app.router.add_post("/wecom/cgi-bin/webhook/send", self._wecom)
        app.router.add_post("/feishu/open-apis/bot/v2/hook/{hook}", self._feishu)
        app.router.add_post("/hook", self._hook)
        app.router.add_post("/hang", self._hang)
        return app

    def _record(self, service: str, request: web.Request, body: Any, refused: str | None) -> None:
        self.received.append(Received(service, dict(request.query), body, refused))

    async def _dingtalk(self, request: web.Request) -> web.Response:
        body = orjson.loads(await request.read())
        q = request.query
        refused = None
        if q.get("access_token") != TOKEN:
            refused = "token is not exist"
        else:
            # DingTalk's check: timestamp (ms) within an hour of now; sign = the base64 of
            # HmacSHA256(key=secret, "timestamp\nsecret"), URL-encoded in the query (aiohttp
            # has decoded it here).
            stamp = q.get("timestamp", "")
            to_sign = f"{stamp}\n{DING_SECRET}".encode()
            digest = hmac.new(DING_SECRET.encode(), to_sign, hashlib.sha256).digest()
            expected = base64.b64encode(digest).decode()
            if not stamp.isdigit() or abs(int(stamp) - time.time() * 1000) > 3600_000:
                refused = "timestamp is not within an hour"
            elif q.get("sign") != expected:
                refused = "sign not match"
        self._record("dingtalk", request, body, refused)
        if refused is not None:
            return web.json_response({"errcode": 310000, "errmsg": refused})
        return web.json_response({"errcode": 0, "errmsg": "ok"})

    async def _wecom(self, request: web.Request) -> web.Response:
        body = orjson.loads(await request.read())
        refused = None if request.query.get("key") == WECOM_KEY else "invalid webhook url"
        self._record("wecom", request, body, refused)
        if refused is not None:
            return web.json_response({"errcode": 93000, "errmsg": refused})
        return web.json_response({"errcode": 0, "errmsg": "ok"})

    async def _feishu(self, request: web.Request) -> web.Response:
        body = orjson.loads(await request.read())
        refused = None
        if request.match_info["hook"] != FEISHU_HOOK:
            refused = "incoming webhook access token invalid"
        else:
            # Feishu's check: timestamp (s) within an hour; "timestamp\nsecret" is the HMAC-SHA256
            # key over an empty message, base64.
            stamp = str(body.get("timestamp", ""))
            key = f"{stamp}\n{FEISHU_SECRET}".encode()
            expected = base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()
            if not stamp.isdigit() or abs(int(stamp) - time.time()) > 3600:
                refused = "timestamp is not within one hour from current time"
            elif body.get("sign") != expected:
                refused = "sign match fail"
        self._record("feishu", request, body, refused)
        if refused is not None:
            return web.json_response({"code": 19021, "msg": refused, "data": {}})
        return web.json_response({"code": 0, "msg": "success", "data": {}})

    async def _hook(self, request: web.Request) -> web.Response:
        self._record("webhook", request, orjson.loads(await request.read()), None)
        return web.json_response({})

    async def _hang(self, request: web.Request) -> web.Response:
        self._record("hang", request, orjson.loads(await request.read()), None)
        self.hung += 1
        await self._release.wait()  # let go when the server shuts down
        return web.json_response({})


@asynccontextmanager
async def serve_webhooks() -> AsyncIterator[tuple[Webhooks, str]]:
    """The services on a free loopback port: their state, and the base URL."""
    hooks = Webhooks()
    runner = web.AppRunner(hooks.app(), access_log=None, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        yield hooks, f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        hooks._release.set()
        await runner.cleanup()


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def targets_yaml(base: str, *, language: str = "en", events: str = "") -> str:
    """A ``notify:`` section with one target of each service at ``base`` (URLs and secrets from
    the variables of ``ENV``)."""
    also = f"    language: {language}\n" + (f"    events: [{events}]\n" if events else "")
    return (
        "notify:\n"
        f"  - type: dingtalk\n    url: '{base}/dingtalk/robot/send?access_token=${{DING_TOKEN}}'\n"
        f"    secret: '${{DING_SECRET}}'\n{also}"
        f"  - type: wecom\n    url: '{base}/wecom/cgi-bin/webhook/send?key=${{WECOM_KEY}}'\n{also}"
        f"  - type: feishu\n    url: '{base}/feishu/open-apis/bot/v2/hook/${{FEISHU_HOOK}}'\n"
        f"    secret: '${{FEISHU_SECRET}}'\n{also}"
        f"  - type: webhook\n    url: '{base}/hook'\n{also}"
    )

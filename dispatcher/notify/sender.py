"""Sending notices: every target that asked for an event, all at once, each with a timeout per
attempt and retries with backoff (tenacity), the whole bounded in time. A notice that cannot be
sent is one warning, never an exception: a notification never changes how a run ends.

The one module of the package that imports aiohttp. Every URL and secret a target resolves to
is handed to ``secret`` (the use case's ``Events.secret``) before anything is sent, so that no
screen shows them; the warnings name a target by its place in the config, never by its URL.

May import: config, notify.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import parse_qsl, urlsplit

import aiohttp
import orjson
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from dispatcher.config import NotifyTarget
from dispatcher.notify.events import EventKind, Notice
from dispatcher.notify.messages import message
from dispatcher.notify.payloads import body, refusal
from dispatcher.notify.signing import dingtalk_url, feishu_sign

__all__ = ["Notifier", "Ready", "Sent"]

log = logging.getLogger(__name__)

_BACKOFF_S: Final = 0.25  # the first wait between attempts; doubled each time
_MAX_BACKOFF_S: Final = 2.0
_QUERY_TOKEN_LEN: Final = 8  # a URL's query values this long are tokens (WeCom's key=...)
_PATH_TOKEN_LEN: Final = 20  # a path segment this long is a token (Feishu's hook id, a uuid)
_HEADERS: Final = {"Content-Type": "application/json; charset=utf-8"}


class _Failed(Exception):
    """An attempt did not deliver; ``str`` says why (no URL in it)."""


class _Transient(_Failed):
    """Worth another attempt: no connection, no answer in time, HTTP 429 or 5xx."""


class _Refused(_Failed):
    """The service refused the message (HTTP 4xx, an error code): another attempt is the same."""


@dataclass(frozen=True, slots=True)
class Ready:
    """A target with its URL and secret read from the environment."""

    target: NotifyTarget
    url: str
    secret: str = ""


@dataclass(frozen=True, slots=True)
class Sent:
    """What became of one notice at one target: the attempts made, and why it failed (None:
    delivered)."""

    target: str  # its place in the config: notify[0]
    kind: str
    event: EventKind
    attempts: int
    error: str | None = None


class Notifier:
    """Sends notices to the targets of a config (none: sends nothing)."""

    def __init__(
        self,
        ready: Sequence[Ready] = (),
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.ready = tuple(ready)
        self.clock, self.sleep = clock, sleep

    @classmethod
    def of(
        cls,
        targets: Sequence[NotifyTarget],
        *,
        secret: Callable[[str], None],
        environ: Mapping[str, str] | None = None,
    ) -> Notifier:
        """The targets with their variables read (ConfigError when one is not set), every URL,
        token and secret handed to ``secret`` first."""
        env = os.environ if environ is None else environ
        ready = []
        for target in targets:
            url, key = target.resolve(env)
            named = [env.get(name, "") for name in target.variables()]
            for value in (url, key, *named, *_tokens(url)):
                if value:
                    secret(value)
            ready.append(Ready(target, url, key))
        return cls(ready)

    def wanted(self, event: EventKind) -> bool:
        """Whether any target asked for ``event``."""
        return any(r.target.wants(event.value) for r in self.ready)

    async def deliver(
        self,
        notices: Sequence[Notice],
        *,
        warn: Callable[[str], None],
        until: Callable[[], Awaitable[object]] | None = None,
    ) -> tuple[Sent, ...]:
        """Send each notice to every target that asked for its event, all at once; a failure
        is one ``warn`` line each, never an exception. ``until`` (a stop's ``wait``): once it
        returns (Ctrl-C), what is not sent yet is given up, as when the time is out."""
        pairs = [(r, n) for n in notices for r in self.ready if r.target.wants(n.event.value)]
        if not pairs:
            return ()
        budget = max(_budget(r.target) for r, _ in pairs)
        tasks: list[asyncio.Task[Sent]] = []
        stopped = False

        async def halt(wait: Callable[[], Awaitable[object]]) -> None:
            nonlocal stopped
            await wait()  # Ctrl-C: what is not sent yet is given up
            stopped = True
            for task in tasks:
                task.cancel()

        try:
            # Each attempt has its timeout already: this bounds the whole, whatever happens.
            async with asyncio.timeout(budget):
                async with aiohttp.ClientSession() as session, asyncio.TaskGroup() as group:
                    tasks.extend(group.create_task(self._one(session, r, n)) for r, n in pairs)
                    if until is not None:
                        watcher = group.create_task(halt(until))
                        await asyncio.gather(*tasks, return_exceptions=True)
                        watcher.cancel()  # every send is over: nothing left to give up
        except TimeoutError:
            pass
        late = "given up: stopped" if stopped else f"out of time ({budget:g} s)"
        sent = tuple(
            task.result()
            if task.done() and not task.cancelled()
            else Sent(r.target.key, r.target.type, n.event, 0, late)
            for task, (r, n) in zip(tasks, pairs, strict=True)
        )
        for s in sent:
            if s.error is None:
                log.info("notification %s sent to %s (%s)", s.event, s.target, s.kind)
            else:
                tries = f"{s.attempts} attempt" + ("" if s.attempts == 1 else "s")
                warn(
                    f"notification {s.event} to {s.target} ({s.kind}) not sent after"
                    f" {tries}: {s.error}"
                )
        return sent

    async def _one(self, session: aiohttp.ClientSession, ready: Ready, notice: Notice) -> Sent:
        target = ready.target
        payload = body(target.type, notice, message(notice, target.language), target.language)
        attempts = 0
        retrying = AsyncRetrying(
            stop=stop_after_attempt(target.retries + 1),
            wait=wait_exponential(multiplier=_BACKOFF_S, max=_MAX_BACKOFF_S),
            retry=retry_if_exception_type(_Transient),
            sleep=self.sleep,
            reraise=True,
        )
        error = None
        try:
            async for attempt in retrying:
                with attempt:
                    attempts += 1
                    await self._post(session, ready, payload)
        except _Failed as exc:
            error = str(exc)
        except Exception as exc:
            # Whatever went wrong, a notification never ends a command: it is said, not raised
            # (by its type only: its text may quote the URL).
            error = f"an unexpected error ({type(exc).__name__})"
        return Sent(target.key, target.type, notice.event, attempts, error)

    async def _post(
        self, session: aiohttp.ClientSession, ready: Ready, payload: dict[str, Any]
    ) -> None:
        target, url, data = ready.target, ready.url, payload
        now = self.clock()
        if ready.secret and target.type == "dingtalk":
            url = dingtalk_url(url, ready.secret, int(now * 1000))
        elif ready.secret and target.type == "feishu":
            stamp = int(now)
            data = {"timestamp": str(stamp), "sign": feishu_sign(ready.secret, stamp), **payload}
        try:
            async with (
                asyncio.timeout(target.timeout_s),
                session.post(url, data=orjson.dumps(data), headers=_HEADERS) as answer,
            ):
                status, raw = answer.status, await answer.read()
        except TimeoutError:
            raise _Transient(f"no answer within {target.timeout_s:g} s") from None
        except aiohttp.InvalidURL:
            raise _Refused("its URL is not a valid URL") from None
        except aiohttp.ClientConnectorError as exc:
            raise _Transient(f"cannot connect ({exc.os_error.strerror or 'refused'})") from None
        except (aiohttp.ClientError, OSError) as exc:
            raise _Transient(f"the connection failed ({type(exc).__name__})") from None
        try:
            parsed = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            parsed = None
        why = refusal(target.type, status, parsed)
        if why is None:
            return
        if status == 429 or status >= 500:
            raise _Transient(why)
        raise _Refused(why)


def _budget(target: NotifyTarget) -> float:
    """The longest a target's attempts and the waits between them may take, and a second."""
    waits = sum(min(_BACKOFF_S * 2.0**n, _MAX_BACKOFF_S) for n in range(target.retries))
    return target.timeout_s * (target.retries + 1) + waits + 1.0


def _tokens(url: str) -> list[str]:
    """The parts of a URL written into it that are tokens: its query's values (access_token=,
    key=) and path segments long enough to be one (Feishu's hook id)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return []
    found = [v for _, v in parse_qsl(parts.query) if len(v) >= _QUERY_TOKEN_LEN]
    return found + [p for p in parts.path.split("/") if len(p) >= _PATH_TOKEN_LEN]

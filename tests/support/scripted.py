"""A stateful OneNET in memory for tests of the run's logic: ``ScriptedOneNet`` answers the real
``OneNetClient`` over a ``MockTransport`` in OneNET's wire format (docs/onenet-api.md). It stores
the execute commands it creates, lists them in its history (paged, filtered by ``start``), shows
their detail, and answers each device's sends from a script first: an answer (``answer``,
``http``) or ``Lost`` (the connection cut after the request left: ``AnswerLost``, the command
stored or not). The history lists a device's commands in the order they were stored (a test
may add them in any order, to see what the caller makes of it). Every call is recorded;
``on_call`` runs after a call changed the state and before its answer goes back (to hold an
answer, or to act at a given call). tests/onenet/test_scripted_onenet.py holds it to the
emulator's answers.

For the emulator's whole behaviour use ``EmulatorTransport``; for one answer per route, ``Routes``
(tests/support/onenet.py).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

import orjson
from yarl import URL

from dispatcher.onenet import AnswerLost, MockTransport, Request, Response
from dispatcher.onenet.client import OneNetClient
from dispatcher.times import BEIJING, format_onenet, parse_onenet

__all__ = [
    "BASE_URL",
    "Call",
    "Hold",
    "Lost",
    "ScriptedOneNet",
    "Sent",
    "Step",
    "Stored",
    "answer",
    "http",
]

BASE_URL: Final = "http://onenet.test"
_JSON: Final = {"Content-Type": "application/json"}


def answer(errno: int, error: str = "", *, status: int = 200, **headers: str) -> Response:
    """A JSON answer with ``errno`` (HTTP 200 unless told), ``data`` null."""
    body = orjson.dumps({"errno": errno, "error": error, "data": None})
    return Response(status, body, {**_JSON, **headers})


def http(status: int, body: bytes = b"<html>busy</html>", **headers: str) -> Response:
    """A bare HTTP answer (a proxy's page unless a body is given)."""
    return Response(status, body, headers)


@dataclass(frozen=True)
class Lost:
    """The answer never arrives (``AnswerLost``); ``created``: OneNET stored the command anyway."""

    created: bool


Step = Response | Lost
Call = tuple[str, str]  # (kind, subject): execute / probe / history imei, detail uuid


@dataclass
class Stored:
    """One cached command as OneNET keeps it; ``send_status`` None lists it without one (an
    unreadable state), ``listed`` False leaves it out of the list (its detail still answers)."""

    uuid: str
    imei: str
    create_time: datetime | None = None
    valid_time: datetime | None = None
    expired_time: datetime | None = None
    args: str | None = None
    type: str = "EXECUTE"
    send_status: int | None = 1
    trigger_msg: int | None = 7
    listed: bool = True

    def wire(self) -> dict[str, Any]:
        """The item as OneNET lists it; a delivered or failed one with its send and confirm
        times (the confirm time with a ``T``, the status by code or digit string, both allowed)."""
        raw: dict[str, Any] = {"cmd_uuid": self.uuid, "type": self.type, "imei": self.imei}
        for name in ("create_time", "valid_time", "expired_time"):
            when: datetime | None = getattr(self, name)
            if when is not None:
                raw[name] = format_onenet(when).replace("T", " ")
        if self.send_status is not None:
            raw["send_status"] = self.send_status
        if self.trigger_msg is not None:
            raw["trigger_msg"] = self.trigger_msg
        if self.send_status in (3, 5, 6):
            raw["send_time"] = "2024-05-01 12:00:00"
        if self.send_status in (5, 6):
            raw["confirm_time"] = "2024-05-01T12:00:05"
            raw["confirm_status"] = 0 if self.send_status == 5 else "5"
        return raw


@dataclass(frozen=True)
class Sent:
    """One execute request as it came: its device, window (as sent) and args; ``at``: when, on
    the ScriptedOneNet's ``clock`` (None without one)."""

    imei: str
    valid_time: str | None
    expired_time: str
    trigger_msg: int
    args: str | None
    at: float | None


@dataclass
class Hold:
    """An ``on_call`` that holds the answers to calls of ``kinds`` (about ``subjects``, or any)
    until ``release``; ``held`` is set once ``after`` of them are held, ``passed`` once one was
    let through."""

    kinds: Collection[str]
    subjects: Collection[str] | None = None
    after: int = 1
    release: asyncio.Event = field(default_factory=asyncio.Event)
    held: asyncio.Event = field(default_factory=asyncio.Event)
    passed: asyncio.Event = field(default_factory=asyncio.Event)
    count: int = 0

    async def __call__(self, kind: str, subject: str) -> None:
        """Hold this call's answer, if it is one of those to hold."""
        if kind not in self.kinds or (self.subjects is not None and subject not in self.subjects):
            return
        self.count += 1
        if self.count >= self.after:
            self.held.set()
        await self.release.wait()
        self.passed.set()


class ScriptedOneNet:
    """OneNET's execute, history and detail calls over a ``MockTransport``; ``client`` is the
    real ``OneNetClient`` on it.

    ``script``: each device's answers to its sends, in order (then accepted). ``probes``: the
    answers to the probe (a one-item history page), in order (then errno 0). ``down``: devices
    whose history and details answer HTTP 502 (``history_down``: every device's);
    ``detail_down``: every detail does; ``history_failures``: the first so many history pages
    do. ``ignores_start``: the list is not filtered by ``start``. ``states``: a live table of
    device -> uuid -> send_status listed besides the stored commands (a test changes it between
    calls); ``unlisted`` uuids are left out of the list, ``unreadable`` ones listed without a
    send_status. ``clock`` dates the sends and the look-ups.
    """

    def __init__(
        self,
        script: Mapping[str, list[Step]] | None = None,
        *,
        probes: list[Response] | None = None,
        clock: Callable[[], float] | None = None,
        down: Collection[str] = (),
        history_down: bool = False,
        detail_down: bool = False,
        history_failures: int = 0,
        ignores_start: bool = False,
        states: Mapping[str, Mapping[str, int]] | None = None,
        unlisted: Collection[str] = (),
        unreadable: Collection[str] = (),
        on_call: Callable[[str, str], Awaitable[None]] | None = None,
    ) -> None:
        self.script = {imei: list(steps) for imei, steps in (script or {}).items()}
        self.probes = list(probes or [])
        self.clock = clock
        self.down, self.history_down, self.detail_down = set(down), history_down, detail_down
        self.history_failures, self.ignores_start = history_failures, ignores_start
        self.states = states
        self.unlisted, self.unreadable = set(unlisted), set(unreadable)
        self.on_call = on_call
        self.commands: dict[str, Stored] = {}
        self.ids = itertools.count()
        self.calls: list[Call] = []
        self.sent: list[Sent] = []
        self.probed: list[str] = []
        self.pages: list[str] = []  # the device of each history page asked for
        self.starts: dict[str, datetime] = {}  # the last start each device's history was asked
        self.looked_up_at: list[float] = []  # when each history page was asked for
        self.details: list[str] = []
        self.transport = MockTransport(self._handle)
        self.client = OneNetClient(self.transport, BASE_URL, "test-key")

    def add(self, *commands: Stored) -> None:
        """Store commands as if created earlier."""
        self.commands.update((c.uuid, c) for c in commands)

    @property
    def sent_at(self) -> list[float]:
        """When each execute request came, on ``clock``."""
        return [s.at for s in self.sent if s.at is not None]

    def sent_imeis(self) -> list[str]:
        """The device of each execute request, in order."""
        return [s.imei for s in self.sent]

    def created_per_imei(self) -> dict[str, int]:
        """How many commands OneNET stores for each device."""
        counts: dict[str, int] = {}
        for c in self.commands.values():
            counts[c.imei] = counts.get(c.imei, 0) + 1
        return counts

    async def _handle(self, request: Request) -> Response:
        url = URL(request.url, encoded=True)
        path, query = url.path.removeprefix("/nbiot"), url.query
        if request.method == "POST" and path == "/execute/offline":
            kind, subject, result = "execute", query["imei"], self._execute(query, request.body)
        elif request.method == "GET" and path == "/offline/history":
            probe = query.get("per_page") == "1"
            kind, subject = ("probe" if probe else "history"), query["imei"]
            result = self._probe(query) if probe else self._history(query)
        elif request.method == "GET" and path.startswith("/offline/history/"):
            kind, subject = "detail", path.rsplit("/", 1)[1]
            result = self._detail(query["imei"], subject)
        else:
            raise AssertionError(f"no such call here: {request.method} {request.url}")
        self.calls.append((kind, subject))
        if self.on_call is not None:
            await self.on_call(kind, subject)
        if isinstance(result, Lost):
            raise AnswerLost("ServerDisconnectedError: Server disconnected")
        return result

    def _now(self) -> float | None:
        return None if self.clock is None else self.clock()

    def _execute(self, query: Mapping[str, str], body: bytes | None) -> Response | Lost:
        args = orjson.loads(body)["args"] if body else None
        imei, valid = query["imei"], query.get("valid_time")
        trigger = int(query.get("trigger_msg", "7"))
        self.sent.append(Sent(imei, valid, query["expired_time"], trigger, args, self._now()))
        steps = self.script.get(imei)
        step = steps.pop(0) if steps else None
        if isinstance(step, Response):
            return step
        if isinstance(step, Lost) and not step.created:
            return step
        created = datetime.now(BEIJING).replace(microsecond=0)
        uuid = f"uuid-{next(self.ids):05d}"
        self.commands[uuid] = Stored(
            uuid,
            imei,
            create_time=created,
            valid_time=parse_onenet(valid) if valid else created,
            expired_time=parse_onenet(query["expired_time"]),
            args=args,
            trigger_msg=trigger,
        )
        if step is not None:
            return step
        return _data({"uuid": uuid})

    def _listing(self, imei: str) -> list[Stored]:
        """The device's commands, stored and from the live table, as listed (in that order)."""
        found = [c for c in self.commands.values() if c.imei == imei]
        for uuid, status in (self.states or {}).get(imei, {}).items():
            found.append(Stored(uuid, imei, send_status=status, trigger_msg=None))
        return found

    def _probe(self, query: Mapping[str, str]) -> Response:
        self.probed.append(query["imei"])
        if self.probes:
            return self.probes.pop(0)
        return _data({"total_count": 0, "items": []})

    def _history(self, query: Mapping[str, str]) -> Response:
        imei, start = query["imei"], parse_onenet(query["start"])
        self.pages.append(imei)
        self.starts[imei] = start
        now = self._now()
        if now is not None:
            self.looked_up_at.append(now)
        if self.history_failures > 0:
            self.history_failures -= 1
            return http(502)
        if self.history_down or imei in self.down:
            return http(502)
        end = parse_onenet(query["end"]) if "end" in query else None
        listed = [
            self._listed(c)
            for c in self._listing(imei)
            if c.listed
            and c.uuid not in self.unlisted
            and (self.ignores_start or c.create_time is None or c.create_time >= start)
            and (end is None or c.create_time is None or c.create_time <= end)
        ]
        page, per_page = int(query["page"]), int(query["per_page"])
        items = listed[(page - 1) * per_page : page * per_page]
        return _data({"total_count": len(listed), "items": items})

    def _listed(self, command: Stored) -> dict[str, Any]:
        raw = command.wire()
        if command.uuid in self.unreadable:
            del raw["send_status"]
        return raw

    def _detail(self, imei: str, uuid: str) -> Response:
        self.details.append(uuid)
        if self.detail_down or self.history_down or imei in self.down:
            return http(502)
        found = {c.uuid: c for c in self._listing(imei)}.get(uuid)
        if found is None:
            return answer(5006, "system logic limit")
        raw = found.wire()
        del raw["cmd_uuid"]
        raw["args"] = found.args
        raw["cmd_result"] = {"value": 42} if found.send_status == 5 else None
        return _data(raw)


def _data(data: object) -> Response:
    """A successful answer carrying ``data``."""
    return Response(200, orjson.dumps({"errno": 0, "error": "succ", "data": data}), _JSON)

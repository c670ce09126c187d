"""The emulator's follow-up calls on stored commands: the history list, one command's detail and
its log, and cancelling one or all of a device's waiting commands.

Each answers for a device whose request already passed the shared checks (faults, api-key or
token, imei: ``Emulator._follow_up``, which also advances the device first when there are
devices), from the store alone, for the ``Caller``: only its product's commands, in its answer
shape. Times are OneNET's answer format ("YYYY-MM-DD HH:MM:SS", UTC+8). ``send_time`` is
present once a command was sent, ``confirm_time`` and ``confirm_status`` once the device answered
(omitted before, as OneNET's "?" fields); the detail adds ``cmd_result`` once answered (null for an
error answer).
"""

from __future__ import annotations

import math

from aiohttp import web

from dispatcher.emulator.checks import parse_id
from dispatcher.emulator.products import Caller
from dispatcher.emulator.replies import answer, error
from dispatcher.emulator.state import (
    BAD_PARAM,
    LOGIC_LIMIT,
    PER_PAGE_DEFAULT,
    PER_PAGE_MAX,
    Store,
    StoredCommand,
    format_answer_time,
    parse_request_time,
)

__all__ = ["cancel", "cancel_all", "detail", "listing", "piecewise"]


def _find(store: Store, imei: str, request: web.Request, caller: Caller) -> StoredCommand | None:
    """The command the path names, if it is this imei's and the caller's product's."""
    cmd = store.find(imei, request.match_info["uuid"])
    return cmd if cmd is not None and caller.sees(cmd) else None


def listing(store: Store, imei: str, request: web.Request, caller: Caller) -> web.Response:
    """GET /nbiot/offline/history: the device's commands created between start and end, paged."""
    query = request.query
    start = parse_request_time(query.get("start", ""))
    end_text = query.get("end")
    end = math.inf if end_text is None else parse_request_time(end_text)
    page = parse_id(query.get("page", "1"))
    per_page = parse_id(query.get("per_page", str(PER_PAGE_DEFAULT)))
    sort = query.get("sort", "DESC").upper()
    shape = caller.shape
    if start is None or end is None or page is None or per_page is None:
        return error(BAD_PARAM, shape)
    if sort not in ("ASC", "DESC"):
        return error(BAD_PARAM, shape)
    if page < 1 or not 1 <= per_page <= PER_PAGE_MAX:
        return error(LOGIC_LIMIT, shape)
    # create_time is shown to the second, so it is compared to the second
    found = [
        cmd
        for cmd in store.for_imei(imei)
        if start <= math.floor(cmd.created_at) <= end and caller.sees(cmd)
    ]
    if sort == "DESC":
        found.reverse()
    first = (page - 1) * per_page
    deliveries = store.deliveries
    items = [cmd.history_item(deliveries.get(cmd.uuid)) for cmd in found[first : first + per_page]]
    data = {"total_count": len(found), "page": page, "per_page": per_page, "items": items}
    return answer(data, shape)


def detail(store: Store, imei: str, request: web.Request, caller: Caller) -> web.Response:
    """GET /nbiot/offline/history/{uuid}: one command, with its args."""
    cmd = _find(store, imei, request, caller)
    if cmd is None:  # not documented; an unknown uuid is taken as a broken constraint
        return error(LOGIC_LIMIT, caller.shape)
    delivery = store.deliveries.get(cmd.uuid)
    item = cmd.history_item(delivery)
    del item["cmd_uuid"]
    item["args"] = cmd.args
    if delivery is not None and delivery.confirm_time is not None:  # "cmd_result (when confirmed)"
        item["cmd_result"] = delivery.cmd_result
    return answer(item, caller.shape)


def piecewise(store: Store, imei: str, request: web.Request, caller: Caller) -> web.Response:
    """GET /nbiot/offline/history/{uuid}/piecewise: one command's log."""
    cmd = _find(store, imei, request, caller)
    if cmd is None:
        return error(LOGIC_LIMIT, caller.shape)
    log = [{"log": "command cached", "time": format_answer_time(cmd.created_at)}]
    delivery = store.deliveries.get(cmd.uuid)
    if delivery is not None:
        log.append({"log": "command sent", "time": format_answer_time(delivery.send_time)})
        if delivery.confirm_time is not None:
            text = f"device answered {delivery.confirm_status}"
            log.append({"log": text, "time": format_answer_time(delivery.confirm_time)})
    return answer(log, caller.shape)


def cancel(store: Store, imei: str, request: web.Request, caller: Caller) -> web.Response:
    """PUT /nbiot/offline/cancel/{uuid}: cancel one waiting command."""
    cmd = _find(store, imei, request, caller)
    if cmd is None or not store.cancel(cmd):  # only a waiting command can be cancelled
        return error(LOGIC_LIMIT, caller.shape)
    return answer(None, caller.shape)


def cancel_all(store: Store, imei: str, request: web.Request, caller: Caller) -> web.Response:
    """PUT /nbiot/offline/cancel/all: cancel every waiting command of the device (of the
    caller's product)."""
    mine = [cmd for cmd in store.for_imei(imei) if caller.sees(cmd)]
    succ = [cmd.uuid for cmd in mine if store.cancel(cmd)]
    return answer({"succ": succ, "failed": [], "total": len(succ)}, caller.shape)

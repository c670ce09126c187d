"""OneNetClient's follow-up calls (history, detail, cancel) and the probe: pages, errors as
OneNetUnavailable or Misrouted, and OneNET's clock read from their answers."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import aiohttp
import pytest
from yarl import URL

from dispatcher.emulator.server import Emulator, Faults, serve as serve_emulator
from dispatcher.errors import OneNetUnavailable
from dispatcher.onenet import (
    AiohttpTransport,
    AnswerLost,
    ConnectTimeout,
    MockTransport,
    ReadTimeout,
    Request,
    Response,
)
from dispatcher.onenet.client import (
    CancelResult,
    Misrouted,
    OneNetClient,
    Outcome,
    Verdict,
)
from tests.support.client_calls import (
    BASE,
    BEIJING,
    EXECUTE,
    HISTORY,
    KEY,
    UUID,
    answer,
    history_item,
    request,
)
from tests.support.onenet import Routes, sent


def paged(total: int, listed: int | None = None) -> Callable[[Request], Response]:
    def respond(req: Request) -> Response:
        url = URL(req.url, encoded=True)
        page, per_page = int(url.query["page"]), int(url.query["per_page"])
        first = (page - 1) * per_page
        items = [history_item(n) for n in range(first, min(first + per_page, listed or total))]
        body = answer(data={"total_count": total, "items": items})
        return Response(200, body)

    return respond


async def test_history_reads_every_page_with_times_formatted_for_onenet(routes: Routes) -> None:
    routes.get(HISTORY, callback=paged(250), repeat=True)
    start = datetime(2030, 1, 1, 2, 0, 0, tzinfo=UTC)
    items = await OneNetClient(routes.transport, BASE, KEY).history("861234567890123", start, start)
    assert [i.uuid for i in items] == [f"uuid-{n}" for n in range(250)]
    urls = [url for _, url, _ in sent(routes)]
    assert sorted(u.query["page"] for u in urls) == ["1", "2", "3"]
    for u in urls:
        assert u.query["start"] == u.query["end"] == "2030-01-01T10:00:00"
        assert (u.query["imei"], u.query["per_page"]) == ("861234567890123", "100")
    first = items[0]
    assert first.type == "EXECUTE" and first.send_status == 1 and first.trigger_msg == 7
    assert first.expired_time == datetime(2030, 1, 2, 10, 0, 0, tzinfo=BEIJING)


async def test_history_stops_at_a_short_page_and_needs_no_end(routes: Routes) -> None:
    routes.get(HISTORY, callback=paged(100), repeat=True)
    start = datetime(2030, 1, 1, 10, 0, 0, tzinfo=BEIJING)
    items = await OneNetClient(routes.transport, BASE, KEY).history("861234567890123", start)
    assert len(items) == 100
    [(_, url, kwargs)] = sent(routes)
    assert "end" not in url.query
    assert kwargs["headers"] == {"api-key": KEY}


async def test_history_that_ends_before_its_total_is_unavailable(routes: Routes) -> None:
    routes.get(HISTORY, callback=paged(150, listed=120), repeat=True)
    with pytest.raises(OneNetUnavailable, match="120 of 150"):
        await OneNetClient(routes.transport, BASE, KEY).history(
            "861234567890123", datetime.now(BEIJING)
        )


@pytest.mark.parametrize(
    "body",
    [
        answer(1, "auth failed"),
        b"<html>oops</html>",
        answer(data={"items": "none"}),
        answer(data={"total_count": 1, "items": [{"type": "EXECUTE"}]}),
        answer(data={"items": [{**history_item(1), "expired_time": "tomorrow"}]}),
        answer(data={"items": [{**history_item(1), "send_status": "waiting"}]}),
    ],
)
async def test_history_without_a_usable_answer_is_unavailable(routes: Routes, body: bytes) -> None:
    routes.get(HISTORY, body=body)
    with pytest.raises(OneNetUnavailable) as caught:
        await OneNetClient(routes.transport, BASE, KEY).history(
            "861234567890123", datetime.now(BEIJING)
        )
    assert KEY not in str(caught.value)


async def test_history_network_trouble_is_unavailable_without_the_key(routes: Routes) -> None:
    routes.get(HISTORY, exception=AnswerLost("ServerDisconnectedError: Server disconnected"))
    with pytest.raises(OneNetUnavailable, match="history") as caught:
        await OneNetClient(routes.transport, BASE, KEY).history(
            "861234567890123", datetime.now(BEIJING)
        )
    assert KEY not in str(caught.value)


async def test_detail_returns_the_command_with_its_args(routes: Routes) -> None:
    detail = {**history_item(1), "args": "reboot now"}
    del detail["cmd_uuid"]
    routes.get(
        f"{BASE}/nbiot/offline/history/{UUID}?imei=861234567890123", body=answer(data=detail)
    )
    got = await OneNetClient(routes.transport, BASE, KEY).detail("861234567890123", UUID)
    assert got["args"] == "reboot now"


async def test_detail_with_an_errno_is_unavailable_and_names_it(routes: Routes) -> None:
    routes.get(f"{BASE}/nbiot/offline/history/{UUID}?imei=1", body=answer(3, "bad uuid"))
    with pytest.raises(OneNetUnavailable, match="errno 3 bad uuid"):
        await OneNetClient(routes.transport, BASE, KEY).detail("1", UUID)


async def test_cancel_says_cancelled_or_carries_the_refusing_errno(routes: Routes) -> None:
    url = f"{BASE}/nbiot/offline/cancel/{UUID}?imei=861234567890123"
    routes.put(url, body=answer())
    routes.put(url, body=answer(5006, "system logic limit"))
    client = OneNetClient(routes.transport, BASE, KEY)
    done = await client.cancel("861234567890123", UUID)
    refused = await client.cancel("861234567890123", UUID)
    assert done == CancelResult(UUID, cancelled=True, http_status=200)
    assert (refused.uuid, refused.cancelled, refused.http_status) == (UUID, False, 200)
    assert refused.refusal is not None
    assert (refused.refusal.verdict, refused.refusal.errno) == (Verdict.REJECTED, 5006)
    routes.put(url, exception=AnswerLost("ClientConnectionError: reset"))
    with pytest.raises(OneNetUnavailable):
        await client.cancel("861234567890123", UUID)


async def test_follow_ups_answered_by_a_proxy_page_raise_misrouted(routes: Routes) -> None:
    page = {"status": 403, "body": b"<html>Forbidden</html>", "content_type": "text/html"}
    routes.get(HISTORY, **page)
    routes.get(f"{BASE}/nbiot/offline/history/{UUID}?imei=1", **page)
    client = OneNetClient(routes.transport, BASE, KEY)
    with pytest.raises(Misrouted) as history:
        await client.history("861234567890123", datetime.now(BEIJING))
    with pytest.raises(Misrouted) as detail:
        await client.detail("1", UUID)
    assert str(history.value) == "history: HTTP 403 (text/html): not a OneNET answer"
    assert str(detail.value) == "detail: HTTP 403 (text/html): not a OneNET answer"
    assert history.value.misrouted is True
    assert isinstance(history.value, OneNetUnavailable)


@pytest.mark.parametrize(
    ("status", "body"),
    [(200, b"<html>maintenance</html>"), (502, b"<html>Bad Gateway</html>"),
     (404, answer(5006, "system logic limit"))],
)  # fmt: skip
async def test_follow_ups_answered_by_onenet_or_a_gateway_are_not_misrouted(
    routes: Routes, status: int, body: bytes
) -> None:
    routes.get(HISTORY, status=status, body=body, content_type="text/html")
    with pytest.raises(OneNetUnavailable) as caught:
        await OneNetClient(routes.transport, BASE, KEY).history(
            "861234567890123", datetime.now(BEIJING)
        )
    assert not isinstance(caught.value, Misrouted)


def test_execute_url_is_the_base_and_path_without_query_or_key() -> None:
    client = OneNetClient(MockTransport(lambda req: Response(500)), BASE + "/", KEY)
    assert client.execute_url == "http://onenet.test/nbiot/execute/offline"


DATE = "Wed, 01 May 2024 04:00:00 GMT"


DATE_UNIX = datetime(2024, 5, 1, 4, 0, 0, tzinfo=UTC).timestamp()


async def test_probe_asks_for_one_history_item_and_is_accepted_with_the_server_date(
    routes: Routes,
) -> None:
    routes.get(HISTORY, body=answer(data={"total_count": 0, "items": []}), headers={"Date": DATE})
    start = datetime(2030, 1, 1, 2, 0, 0, tzinfo=UTC)
    outcome = await OneNetClient(routes.transport, BASE, KEY).probe("861234567890123", start)
    assert outcome == Outcome(Verdict.ACCEPTED, errno=0, http_status=200, server_date=DATE_UNIX)
    [(method, url, kwargs)] = sent(routes)
    assert (method, url.path) == ("GET", "/nbiot/offline/history")
    assert dict(url.query) == {
        "imei": "861234567890123",
        "start": "2030-01-01T10:00:00",
        "page": "1",
        "per_page": "1",
    }
    assert kwargs["headers"] == {"api-key": KEY}


@pytest.mark.parametrize(
    ("status", "body", "verdict", "errno"),
    [(200, answer(1, "auth failed"), Verdict.REJECTED, 1),
     (200, answer(7, "service internal error"), Verdict.TRANSIENT, 7),
     (200, b"<html>maintenance</html>", Verdict.IN_DOUBT, None),
     (404, b"<html>Not Found</html>", Verdict.TRANSIENT, None),
     (302, answer(), Verdict.IN_DOUBT, 0)],
)  # fmt: skip
async def test_probe_answers_other_than_success_are_judged_as_execute_answers(
    routes: Routes,
    status: int,
    body: bytes,
    verdict: Verdict,
    errno: int | None,
) -> None:
    routes.get(HISTORY, status=status, body=body, headers={"Date": DATE})
    outcome = await OneNetClient(routes.transport, BASE, KEY).probe(
        "861234567890123", datetime.now(UTC)
    )
    assert (outcome.verdict, outcome.errno, outcome.uuid) == (verdict, errno, None)
    assert outcome.server_date == DATE_UNIX


async def test_probe_network_failures_are_outcomes_never_raised(routes: Routes) -> None:
    routes.get(HISTORY, exception=ConnectTimeout("ConnectionTimeoutError: connect timed out"))
    routes.get(HISTORY, exception=AnswerLost("ServerDisconnectedError: Server disconnected"))
    routes.get(HISTORY, exception=ReadTimeout("SocketTimeoutError: Timeout on reading data"))
    client = OneNetClient(routes.transport, BASE, KEY)
    refused, cut, late = [await client.probe("861234567890123", datetime.now(UTC)) for _ in "abc"]
    assert (refused.verdict, refused.reached) == (Verdict.TRANSIENT, False)
    assert (cut.verdict, cut.reached, cut.timed_out) == (Verdict.IN_DOUBT, True, False)
    assert (late.verdict, late.timed_out) == (Verdict.IN_DOUBT, True)


async def test_probe_reads_the_emulators_offset_clock() -> None:
    now = 1_900_000_000.0
    emulator = Emulator(Faults(clock_offset_s=-7200.0), clock=lambda: now)
    async with serve_emulator(emulator) as url, aiohttp.ClientSession() as session:
        outcome = await OneNetClient(AiohttpTransport(session), url, KEY).probe(
            "861234567890123", datetime.fromtimestamp(now, UTC)
        )
    assert (outcome.verdict, outcome.uuid) == (Verdict.ACCEPTED, None)
    assert outcome.server_date == now - 7200.0


async def test_history_awaits_before_page_ahead_of_each_page_and_reports_each_date(
    routes: Routes,
) -> None:
    events: list[str] = []
    pages = paged(250)

    def respond(req: Request) -> Response:
        page = URL(req.url, encoded=True).query["page"]
        events.append(f"page {page}")
        result = pages(req)
        return Response(result.status, result.body, {"Date": f"Wed, 01 May 2024 04:00:0{page} GMT"})

    async def before_page() -> None:
        events.append("pace")

    dates: list[float] = []
    routes.get(HISTORY, callback=respond, repeat=True)
    items = await OneNetClient(routes.transport, BASE, KEY).history(
        "861234567890123", datetime.now(UTC), before_page=before_page, on_date=dates.append
    )
    assert len(items) == 250
    assert events == ["pace", "page 1", "pace", "page 2", "pace", "page 3"]
    assert dates == [DATE_UNIX + 1, DATE_UNIX + 2, DATE_UNIX + 3]


async def test_detail_reports_the_server_date_even_when_the_answer_is_an_error(
    routes: Routes,
) -> None:
    url = f"{BASE}/nbiot/offline/history/{UUID}?imei=1"
    routes.get(url, body=answer(data={"args": "x"}), headers={"Date": DATE})
    routes.get(url, body=answer(3, "bad uuid"), headers={"Date": DATE})
    routes.get(url, body=answer(data={"args": "x"}), headers={"Date": "not a date"})
    dates: list[float] = []
    client = OneNetClient(routes.transport, BASE, KEY)
    assert (await client.detail("1", UUID, on_date=dates.append))["args"] == "x"
    with pytest.raises(OneNetUnavailable):
        await client.detail("1", UUID, on_date=dates.append)
    await client.detail("1", UUID, on_date=dates.append)
    assert dates == [DATE_UNIX, DATE_UNIX]


async def test_execute_outcome_carries_the_server_date(routes: Routes) -> None:
    routes.post(EXECUTE, body=answer(data={"uuid": UUID}), headers={"Date": DATE})
    outcome = await OneNetClient(routes.transport, BASE, KEY).create(request())
    assert (outcome.uuid, outcome.server_date) == (UUID, DATE_UNIX)

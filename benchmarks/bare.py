"""The bare aiohttp loop: the requests ``dispatcher run`` sends, and nothing else.

Usage: ONENET_API_KEY=... python -m benchmarks.bare JOB.csv BASE_URL [WORKERS]

One session, WORKERS coroutines (default 64) sharing one csv.reader, the same query parameters,
body and api-key header as the dispatcher, uvloop when installed. No validation, no ledger, no
retries, no pacing: the limit of this stack. Each distinct time is resolved once. Prints
``accepted N of M`` and exits 1 unless every command was accepted.
"""

from __future__ import annotations

import asyncio
import csv
import os
import sys
from collections.abc import Callable, Iterator

import aiohttp
import orjson
from yarl import URL

from benchmarks.reltime import now_utc8, time_resolver

# Spelled out rather than imported: the bare loop loads nothing of dispatcher.
COLUMNS = (
    "imei",
    "obj_id",
    "obj_inst_id",
    "res_id",
    "args",
    "valid_time",
    "expired_time",
    "retry",
    "timeout",
    "trigger_msg",
)


async def worker(
    rows: Iterator[list[str]],
    session: aiohttp.ClientSession,
    execute: str,
    headers: dict[str, str],
    resolve: Callable[[str], str],
    counts: list[int],
) -> None:
    """Send rows until the shared reader is exhausted."""
    for imei, obj_id, inst, res, args, valid, expired, retry, timeout, trigger in rows:
        url = (
            f"{execute}{imei}&obj_id={obj_id}&obj_inst_id={inst}&res_id={res}"
            f"&expired_time={resolve(expired)}&retry={retry}&timeout={timeout}"
            f"&trigger_msg={trigger}"
        )
        if valid:
            url += "&valid_time=" + resolve(valid)
        body = orjson.dumps({"args": args})
        async with session.post(URL(url, encoded=True), data=body, headers=headers) as resp:
            doc = orjson.loads(await resp.read())
        counts[resp.status == 200 and doc.get("errno") == 0] += 1


async def send_all(
    rows: Iterator[list[str]], base_url: str, workers: int, api_key: str
) -> list[int]:
    """Send every row; return [not accepted, accepted]."""
    counts = [0, 0]
    resolve = time_resolver(now_utc8())
    headers = {"api-key": api_key, "Content-Type": "application/json"}
    execute = base_url.rstrip("/") + "/nbiot/execute/offline?imei="
    timeout = aiohttp.ClientTimeout(total=30)
    connector = aiohttp.TCPConnector(limit=workers)
    async with (
        aiohttp.ClientSession(timeout=timeout, connector=connector) as session,
        asyncio.TaskGroup() as tg,
    ):
        for _ in range(workers):
            tg.create_task(worker(rows, session, execute, headers, resolve, counts))
    return counts


def main(argv: list[str]) -> int:
    """Command line: JOB.csv BASE_URL [WORKERS]."""
    if len(argv) not in (2, 3):
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    workers = int(argv[2]) if len(argv) == 3 else 64
    factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    try:
        import uvloop

        factory = uvloop.new_event_loop
    except ImportError:
        pass
    with (
        open(argv[0], newline="", encoding="utf-8") as f,
        asyncio.Runner(loop_factory=factory) as runner,
    ):
        rows = csv.reader(f)
        if tuple(next(rows, ())) != COLUMNS:
            print(f"{argv[0]}: expected the columns {','.join(COLUMNS)}", file=sys.stderr)
            return 2
        failed, accepted = runner.run(
            send_all(rows, argv[1], workers, os.environ["ONENET_API_KEY"])
        )
    print(f"accepted {accepted} of {accepted + failed}")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

"""The bare aiohttp loop: the requests ``dispatcher run`` sends, and nothing else.

Usage: ONENET_API_KEY=... python -m benchmarks.bare JOB.csv BASE_URL [WORKERS]

One session, WORKERS coroutines (default 64) sharing one csv.reader, the same query parameters,
body and api-key header as the dispatcher, uvloop when installed. No validation, no ledger, no
retries, no pacing: the limit of this stack. Relative times are resolved once, at start. Prints
``accepted N of M`` and exits 1 unless every command was accepted.
"""

from __future__ import annotations

import asyncio
import csv
import os
import re
import sys
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone

import aiohttp
import orjson
from yarl import URL

_UTC8 = timezone(timedelta(hours=8))
_OFFSET = re.compile(r"\+(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
_COLUMNS = (
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


def time_resolver(now: datetime) -> Callable[[str], str]:
    """A job file time -> OneNET's text; each distinct value is worked out once."""
    cache: dict[str, str] = {}

    def resolve(spec: str) -> str:
        text = cache.get(spec)
        if text is None:
            m = _OFFSET.fullmatch(spec)
            if m is None:
                text = spec  # already absolute, as OneNET takes it
            else:
                d, h, mi, s = (int(g or 0) for g in m.groups())
                later = now + timedelta(days=d, hours=h, minutes=mi, seconds=s)
                text = later.strftime("%Y-%m-%dT%H:%M:%S")
            cache[spec] = text
        return text

    return resolve


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


async def send_all(path: str, base_url: str, workers: int, api_key: str) -> list[int]:
    """Send every row of ``path``; return [not accepted, accepted]."""
    counts = [0, 0]
    resolve = time_resolver(datetime.now(_UTC8))
    headers = {"api-key": api_key, "Content-Type": "application/json"}
    execute = base_url.rstrip("/") + "/nbiot/execute/offline?imei="
    timeout = aiohttp.ClientTimeout(total=30)
    connector = aiohttp.TCPConnector(limit=workers)
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader)
        if tuple(header) != _COLUMNS:
            raise SystemExit(f"{path}: expected the columns {','.join(_COLUMNS)}")
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
            async with asyncio.TaskGroup() as tg:
                for _ in range(workers):
                    tg.create_task(worker(reader, session, execute, headers, resolve, counts))
    return counts


def main(argv: list[str]) -> int:
    """Command line: JOB.csv BASE_URL [WORKERS]."""
    if len(argv) not in (2, 3):
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    workers = int(argv[2]) if len(argv) == 3 else 64
    factory = None
    try:
        import uvloop

        factory = uvloop.new_event_loop
    except ImportError:
        pass
    with asyncio.Runner(loop_factory=factory) as runner:
        failed, accepted = runner.run(
            send_all(argv[0], argv[1], workers, os.environ["ONENET_API_KEY"])
        )
    print(f"accepted {accepted} of {accepted + failed}")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

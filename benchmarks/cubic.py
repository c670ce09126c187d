"""A contender: the AWS SDKs' adaptive retry mode (CUBIC-paced token bucket) on the same job.

Usage: ONENET_API_KEY=... python -m benchmarks.cubic JOB.csv BASE_URL [WORKERS] [--max-attempts N]

The same requests as bare.py (WORKERS coroutines sharing one csv.reader, default 64), each sent
through a port of botocore's retry mode ``adaptive``: the client-side rate limiter of
``botocore/retries/adaptive.py`` (``ClientRateLimiter``, ``RateClocker``: responses counted per
half-second bucket, smoothing 0.8), ``throttling.py`` (``CubicCalculator``: scale constant C 0.4,
beta 0.7) and ``bucket.py`` (``TokenBucket``: min rate 0.5/s, capacity = the rate), under the
``standard`` retry handler that mode runs with (``standard.py``: ``StandardRetryConditions``,
``ExponentialBackoff``, ``RetryQuotaChecker``; ``quota.py``: ``RetryQuota``, 500 units). Ported
from botocore's source as of commit 0e6e2404b85dc336dd2889814e089bde7d1a4c55
(https://github.com/boto/botocore; the limiter's three files are unchanged since 2024), which is
the "adaptive" retry mode of the AWS SDKs and Tools reference guide ("Retry behavior"); CUBIC
itself is Ha, Rhee and Xu, "CUBIC: a new TCP-friendly high-speed TCP variant" (2008), RFC 8312.

In short: the bucket is off until the first throttling answer. Every answer records the measured
response rate (``RateClocker``); a throttle sets CUBIC's W_max to that rate (or to the bucket's
rate, if lower, once on) and the new rate to beta times it; a clean answer sets the rate to
``C * (t - K)**3 + W_max`` with ``K = cbrt(W_max * (1 - beta) / C)``, t the time since the last
throttle. The bucket's rate is the lower of that and twice the measured rate. Throttled and
transient answers are retried up to max_attempts, after ``rand() * min(2**(attempt - 1), 20)``
seconds, while the retry quota lasts (5 units a retry, 10 after a timeout; a success returns 1,
or what its retry took).

Where this differs from botocore, and why:

- asyncio instead of threads: waiters for a token queue on an ``asyncio.Lock`` (botocore: they
  share a ``threading.Condition``); the same tokens, handed out in arrival order. A rate change
  wakes the waiting one, as botocore's ``notify()`` does. The clock is ``time.monotonic``.
- OneNET has no AWS error codes: HTTP 429 and errno 7 are the throttling errors (botocore: codes
  such as ``Throttling``, ``SlowDown``); HTTP 500/502/503/504 and connection errors are transient,
  as in botocore. An errno-7 answer is a non-2xx answer for the quota (it returns nothing).
- Retry-After is ignored, as botocore's default retries do (they read no Retry-After; only the
  opt-in 2026 behaviour reads ``x-amz-retry-after``); the backoff is that default one.
- max_attempts defaults to botocore's 3; the benchmark passes the dispatcher's 6.

Prints one JSON line of counts; exits 1 unless every command was accepted.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import random
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass

import aiohttp
import orjson
from yarl import URL

from benchmarks.bare import COLUMNS
from benchmarks.cubic_limiter import ClientRateLimiter, RetryQuota
from benchmarks.reltime import now_utc8, time_resolver

_THROTTLING_ERRNO = 7
_TRANSIENT_STATUS = (500, 502, 503, 504)  # TransientRetryableChecker._TRANSIENT_STATUS_CODES


@dataclass(slots=True)
class Counts:
    """What the run did (printed as JSON)."""

    accepted: int = 0
    rejected: int = 0  # another errno: not retryable
    failed: int = 0  # throttled or transient trouble outlasted the attempts or the quota
    posts: int = 0
    throttled: int = 0  # throttling answers seen
    transient: int = 0  # 5xx answers and connection errors seen
    quota_refused: int = 0  # retries the quota did not allow (the command failed)
    max_attempts_reached: int = 0
    enabled: bool = False
    final_max_rate: float = 0.0
    quota_left: int = 0


# StandardRetryConditions, ExponentialBackoff and RetryQuotaChecker (botocore's default path)
_RETRY_COST, _TIMEOUT_RETRY_COST, _NO_RETRY_INCREMENT = 5, 10, 1
_BASE, _MAX_BACKOFF = 2, 20


async def send_one(
    url: URL,
    body: bytes,
    session: aiohttp.ClientSession,
    headers: dict[str, str],
    limiter: ClientRateLimiter,
    quota: RetryQuota,
    max_attempts: int,
    counts: Counts,
) -> None:
    """One API call: attempts as botocore's endpoint makes them, then its after-call."""
    attempts = 1
    taken: int | None = None  # retry_quota_capacity of the request context
    while True:
        await limiter.on_sending_request()  # before-send
        status: int | None = None
        errno: object = None
        timed_out = False
        counts.posts += 1
        try:
            async with session.post(url, data=body, headers=headers) as resp:
                raw = await resp.read()
                status = resp.status
            if status == 200:
                try:
                    doc = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    doc = {}
                errno = doc.get("errno") if isinstance(doc, dict) else None
        except (aiohttp.ClientError, TimeoutError) as exc:
            timed_out = isinstance(exc, TimeoutError)
        accepted = status == 200 and errno == 0
        throttled = status == 429 or (status == 200 and errno == _THROTTLING_ERRNO)
        transient = status is None or status in _TRANSIENT_STATUS
        counts.throttled += throttled
        counts.transient += transient
        # needs-retry: the standard handler (registered on the more specific event: first) ...
        delay: float | None = None
        if not accepted and (throttled or transient):
            if attempts >= max_attempts:
                counts.max_attempts_reached += 1
            elif quota.acquire(_TIMEOUT_RETRY_COST if timed_out else _RETRY_COST):
                taken = _TIMEOUT_RETRY_COST if timed_out else _RETRY_COST
                delay = random.random() * min(_BASE ** (attempts - 1), _MAX_BACKOFF)
            else:
                counts.quota_refused += 1
        limiter.on_receiving_response(throttled)  # ... then the adaptive limiter
        if delay is None:
            break
        await asyncio.sleep(delay)
        attempts += 1
    if accepted:  # after-call: a 2xx answer gives quota back
        quota.release(_NO_RETRY_INCREMENT if taken is None else taken)
        counts.accepted += 1
    elif status == 200 and not throttled:
        counts.rejected += 1
    else:
        counts.failed += 1


async def worker(
    rows: Iterator[list[str]],
    execute: str,
    resolve: Callable[[str], str],
    send: Callable[[URL, bytes], Awaitable[None]],
) -> None:
    """Send rows until the shared reader is exhausted (the URL and body as bare.py's)."""
    for imei, obj_id, inst, res, args, valid, expired, retry, timeout, trigger in rows:
        url = (
            f"{execute}{imei}&obj_id={obj_id}&obj_inst_id={inst}&res_id={res}"
            f"&expired_time={resolve(expired)}&retry={retry}&timeout={timeout}"
            f"&trigger_msg={trigger}"
        )
        if valid:
            url += "&valid_time=" + resolve(valid)
        await send(URL(url, encoded=True), orjson.dumps({"args": args}))


async def send_all(
    rows: Iterator[list[str]], base_url: str, workers: int, api_key: str, max_attempts: int
) -> Counts:
    """Send every row through one adaptive limiter; return the counts."""
    counts = Counts()
    limiter = ClientRateLimiter(time.monotonic)
    quota = RetryQuota()
    resolve = time_resolver(now_utc8())
    headers = {"api-key": api_key, "Content-Type": "application/json"}
    execute = base_url.rstrip("/") + "/nbiot/execute/offline?imei="
    connector = aiohttp.TCPConnector(limit=workers)
    async with aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=30), connector=connector
    ) as session:

        async def send(url: URL, body: bytes) -> None:
            await send_one(url, body, session, headers, limiter, quota, max_attempts, counts)

        async with asyncio.TaskGroup() as tg:
            for _ in range(workers):
                tg.create_task(worker(rows, execute, resolve, send))
    counts.enabled = limiter.enabled
    counts.final_max_rate = limiter.max_rate
    counts.quota_left = quota.available_capacity
    return counts


def main(argv: list[str]) -> int:
    """Command line: JOB.csv BASE_URL [WORKERS] [--max-attempts N]."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.cubic")
    p.add_argument("job")
    p.add_argument("base_url")
    p.add_argument("workers", nargs="?", type=int, default=64)
    p.add_argument("--max-attempts", type=int, default=3)
    args = p.parse_args(argv)
    factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    try:
        import uvloop

        factory = uvloop.new_event_loop
    except ImportError:
        pass
    with (
        open(args.job, newline="", encoding="utf-8") as f,
        asyncio.Runner(loop_factory=factory) as runner,
    ):
        rows = csv.reader(f)
        if tuple(next(rows, ())) != COLUMNS:
            print(f"{args.job}: expected the columns {','.join(COLUMNS)}", file=sys.stderr)
            return 2
        counts = runner.run(
            send_all(
                rows, args.base_url, args.workers, os.environ["ONENET_API_KEY"], args.max_attempts
            )
        )
    print(orjson.dumps(asdict(counts)).decode())
    return 0 if counts.failed == 0 and counts.rejected == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

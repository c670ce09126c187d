"""Retry policies, driven by tenacity: one per kind of operation.

A create (``Attempts``) is not idempotent: what is retried is decided by the outcome's verdict
(answers.py decides verdicts, once): transient answers, which say nothing was created, are retried
with exponential backoff and full jitter, never sooner than a ``Retry-After``; errno 5108 is
retried once; everything else ends the attempts at once. A query (``retry_query``) is idempotent:
any unusable answer may be asked again, except one that is not OneNET's (a wrong address stays
wrong). A stop request ends either at the next wait.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_base,
    retry_if_exception,
    stop_after_attempt,
)
from tenacity.stop import stop_base
from tenacity.wait import wait_base, wait_random_exponential

from dispatcher.config import RetrySettings
from dispatcher.errors import OneNetUnavailable
from dispatcher.onenet.client import MAX_RETRY_AFTER, Outcome, Verdict

__all__ = ["Attempts", "retry_query", "should_retry"]

T = TypeVar("T")

_QUERY_ATTEMPTS = 3


def should_retry(outcome: Outcome, attempt: int) -> bool:
    """Retry transient outcomes; errno 5108 once."""
    if outcome.verdict is Verdict.TRANSIENT:
        return True
    return outcome.verdict is Verdict.RETRY_ONCE and attempt < 2


class _stop_requested(stop_base):
    def __init__(self, flag: Any) -> None:
        self.flag = flag

    def __call__(self, retry_state: RetryCallState) -> bool:
        return bool(self.flag.requested)


class _honour_retry_after(wait_base):
    """The inner wait, but never shorter than the server's Retry-After."""

    def __init__(self, inner: wait_base) -> None:
        self.inner = inner

    def __call__(self, retry_state: RetryCallState) -> float:
        delay = float(self.inner(retry_state))
        outcome = retry_state.outcome
        if outcome is not None and not outcome.failed:
            retry_after = outcome.result().retry_after
            if retry_after is not None:
                delay = max(delay, retry_after)
        return delay


THROTTLED_PER_ATTEMPT = 20
"""Throttled attempts a command may meet per attempt it is allowed: a server that throttles for
hours on end fails it (safe to send again) rather than holding the run until it expires."""


class _stop_after_unthrottled(stop_base):
    """Stop after ``n`` attempts that were not throttled: a throttle is not a failure, so a
    throttled attempt does not use up a command's attempts (up to THROTTLED_PER_ATTEMPT * n of
    them; its expired_time, or a stop, ends it sooner)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.throttled = 0

    def __call__(self, retry_state: RetryCallState) -> bool:
        outcome = retry_state.outcome
        if outcome is not None and not outcome.failed and outcome.result().throttled:
            self.throttled += 1
        if self.throttled >= THROTTLED_PER_ATTEMPT * self.n:
            return True
        return retry_state.attempt_number - self.throttled >= self.n


class Attempts:
    """Runs one command's attempts: ``await attempts.run(fn, *args)``.

    Throttled attempts (errno 7, HTTP 429, Retry-After) are not counted against
    ``max_attempts``: the lane slows down, and the command goes again.
    """

    def __init__(
        self,
        settings: RetrySettings,
        *,
        stop: Any,
        sleep: Callable[[float], Awaitable[None]],
    ) -> None:
        self._max_attempts = settings.max_attempts
        self._stop = stop
        self._retrying = AsyncRetrying(
            stop=stop_after_attempt(settings.max_attempts) | _stop_requested(stop),
            wait=_honour_retry_after(
                # "Full jitter": uniform in [0, initial * 2**n], capped (AWS Architecture Blog,
                # "Exponential Backoff And Jitter"), so retrying workers spread out.
                wait_random_exponential(
                    multiplier=settings.initial_backoff_s, max=settings.max_backoff_s
                )
            ),
            retry=_retry_on_outcome(),
            sleep=sleep,
            retry_error_callback=_last_outcome,
            reraise=True,
        )

    async def run(self, fn: Callable[..., Awaitable[Outcome]], *args: Any) -> Outcome:
        """The final outcome of ``fn(*args)``; an exception from ``fn`` ends the attempts."""
        first = await fn(*args)
        return await self.after(first, fn, *args) if should_retry(first, 1) else first

    async def after(
        self, first: Outcome, fn: Callable[..., Awaitable[Outcome]], *args: Any
    ) -> Outcome:
        """The final outcome of the attempts that follow ``first`` (``fn(*args)``'s answer,
        which said to retry); an exception from ``fn`` ends them."""
        # Most commands end at their first attempt, so tenacity (whose set-up costs about as
        # much CPU as the request itself) takes over only after one that says to retry, with
        # that attempt as its first.
        made = [first]

        async def attempt() -> Outcome:
            return made.pop() if made else await fn(*args)

        # A stop of its own per command: it counts that command's throttled attempts.
        retrying = self._retrying.copy(
            stop=_stop_after_unthrottled(self._max_attempts) | _stop_requested(self._stop)
        )
        outcome: Outcome = await retrying(attempt)
        return outcome


class _retry_on_outcome(retry_base):
    def __call__(self, retry_state: RetryCallState) -> bool:
        outcome = retry_state.outcome
        if outcome is None or outcome.failed:
            return False
        result: Outcome = outcome.result()
        return should_retry(result, retry_state.attempt_number)


def _last_outcome(retry_state: RetryCallState) -> Outcome:
    assert retry_state.outcome is not None  # tenacity calls this only after an attempt
    result: Outcome = retry_state.outcome.result()
    return result


def retry_query(
    settings: RetrySettings, *, stop: Any, sleep: Callable[[float], Awaitable[None]]
) -> Callable[[Callable[[], Awaitable[T]]], Awaitable[T]]:
    """The policy of an idempotent call (a history or detail query, a cancel): ``await
    policy(call)`` asks again after ``OneNetUnavailable`` (not after a misrouted answer), with the
    same backoff as sends, and raises the last error when out of attempts or stopped."""

    def worth_asking_again(exc: BaseException) -> bool:
        # Not a wrong address (it stays wrong), not a timeout (a server that hangs would make
        # every look-up wait several timeouts), not a business errno (auth failed, a bad
        # parameter: the same again): those end the look-up at once.
        if not isinstance(exc, OneNetUnavailable) or getattr(exc, "misrouted", False):
            return False
        return exc.retryable and not isinstance(exc.__cause__, TimeoutError)

    backoff = wait_random_exponential(
        multiplier=settings.initial_backoff_s, max=settings.max_backoff_s
    )

    def wait(retry_state: RetryCallState) -> float:
        # OneNET's Retry-After, when it gave one, over our own backoff.
        failed = retry_state.outcome.exception() if retry_state.outcome is not None else None
        after = getattr(failed, "retry_after", None)
        ours = backoff(retry_state)
        return max(ours, min(float(after), MAX_RETRY_AFTER)) if after is not None else ours

    retrying = AsyncRetrying(
        # A look-up left unanswered leaves its commands in doubt, not lost: a few tries will do.
        stop=stop_after_attempt(min(settings.max_attempts, _QUERY_ATTEMPTS))
        | _stop_requested(stop),
        wait=wait,
        retry=retry_if_exception(worth_asking_again),
        sleep=sleep,
        reraise=True,
    )

    async def policy(call: Callable[[], Awaitable[T]]) -> T:
        failed: list[BaseException] = []

        async def attempt() -> T:
            # tenacity looks at the stop before its wait, not after: a stop that came during the
            # backoff ends the look-up here, with the last error, before asking again.
            if failed and stop.requested:
                raise failed[-1]
            try:
                return await call()
            except BaseException as exc:
                failed.append(exc)
                raise

        result: T = await retrying.copy()(attempt)
        return result

    return policy

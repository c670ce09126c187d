"""botocore's adaptive retry mode, ported: the client-side rate limiter (``ClientRateLimiter``,
``RateClocker``, ``CubicCalculator``, ``TokenBucket``) and the standard handler's ``RetryQuota``.
cubic.py says where each comes from and where this port differs.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable

__all__ = [
    "ClientRateLimiter",
    "Clock",
    "CubicCalculator",
    "RateClocker",
    "RetryQuota",
    "TokenBucket",
]

Clock = Callable[[], float]


class CubicCalculator:
    """botocore.retries.throttling.CubicCalculator."""

    SCALE_CONSTANT = 0.4
    BETA = 0.7

    def __init__(
        self,
        starting_max_rate: float,
        start_time: float,
        scale_constant: float = SCALE_CONSTANT,
        beta: float = BETA,
    ) -> None:
        self.w_max = starting_max_rate
        self._scale_constant = scale_constant
        self._beta = beta
        self.k = self._calculate_zero_point()
        self.last_fail = start_time

    def _calculate_zero_point(self) -> float:
        scaled_value = (self.w_max * (1 - self._beta)) / self._scale_constant
        return float(scaled_value ** (1 / 3.0))

    def success_received(self, timestamp: float) -> float:
        """The rate CUBIC allows ``timestamp - last_fail`` seconds after the last throttle."""
        dt = timestamp - self.last_fail
        return self._scale_constant * (dt - self.k) ** 3 + self.w_max

    def error_received(self, current_rate: float, timestamp: float) -> float:
        """A throttle at ``current_rate``: the new W_max, and beta times it."""
        self.w_max = current_rate
        self.k = self._calculate_zero_point()
        self.last_fail = timestamp
        return current_rate * self._beta


class RateClocker:
    """botocore.retries.adaptive.RateClocker: the rate of responses, per half-second bucket."""

    SMOOTHING = 0.8
    TIME_BUCKET_RANGE = 0.5

    def __init__(self, clock: Clock, smoothing: float = SMOOTHING) -> None:
        self._clock = clock
        self.measured_rate = 0.0
        self._smoothing = smoothing
        self._last_bucket = float(math.floor(clock()))
        self._time_bucket_scale = 1 / self.TIME_BUCKET_RANGE
        self._count = 0

    def record(self, amount: int = 1) -> float:
        """Count a response; returns the smoothed rate."""
        t = self._clock()
        bucket = math.floor(t * self._time_bucket_scale) / self._time_bucket_scale
        self._count += amount
        if bucket > self._last_bucket:
            current_rate = self._count / float(bucket - self._last_bucket)
            self.measured_rate = (current_rate * self._smoothing) + (
                self.measured_rate * (1 - self._smoothing)
            )
            self._count = 0
            self._last_bucket = bucket
        return self.measured_rate


class TokenBucket:
    """botocore.retries.bucket.TokenBucket, its waiters on an asyncio.Lock."""

    MIN_RATE = 0.5

    def __init__(self, max_rate: float, clock: Clock, min_rate: float = MIN_RATE) -> None:
        self._fill_rate = min_rate
        self._max_capacity = 1.0
        self._current_capacity = 0.0
        self._clock = clock
        self._last_timestamp: float | None = None
        self._min_rate = min_rate
        self._lock = asyncio.Lock()
        self._changed = asyncio.Event()  # botocore: the condition's notify()
        self.max_rate = max_rate

    @property
    def max_rate(self) -> float:
        """The fill rate, tokens per second."""
        return self._fill_rate

    @max_rate.setter
    def max_rate(self, value: float) -> None:
        # Fill what the old rate owes first, or the time since would fill at the new one.
        self._refill()
        self._fill_rate = max(value, self._min_rate)
        self._max_capacity = value if value >= 1 else 1
        self._current_capacity = min(self._current_capacity, self._max_capacity)
        self._changed.set()

    async def acquire(self, amount: float = 1) -> None:
        """Wait until ``amount`` tokens are there, and take them."""
        async with self._lock:
            self._refill()
            if amount <= self._current_capacity:
                self._current_capacity -= amount
                return
            sleep_amount = self._sleep_amount(amount)
            while sleep_amount > 0:
                self._changed.clear()
                try:
                    async with asyncio.timeout(sleep_amount):
                        await self._changed.wait()
                except TimeoutError:
                    pass
                self._refill()
                sleep_amount = self._sleep_amount(amount)
            self._current_capacity -= amount

    def _sleep_amount(self, amount: float) -> float:
        return (amount - self._current_capacity) / self._fill_rate

    def _refill(self) -> None:
        timestamp = self._clock()
        if self._last_timestamp is None:
            self._last_timestamp = timestamp
            return
        fill_amount = (timestamp - self._last_timestamp) * self._fill_rate
        self._current_capacity = min(self._max_capacity, self._current_capacity + fill_amount)
        self._last_timestamp = timestamp


class ClientRateLimiter:
    """botocore.retries.adaptive.ClientRateLimiter: the bucket, on from the first throttle."""

    MAX_RATE_ADJUST_SCALE = 2.0

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._rate_adjustor = CubicCalculator(starting_max_rate=0, start_time=clock())
        self._token_bucket = TokenBucket(max_rate=1, clock=clock)
        self._rate_clocker = RateClocker(clock)
        self.enabled = False

    @property
    def max_rate(self) -> float:
        """The bucket's current rate."""
        return self._token_bucket.max_rate

    async def on_sending_request(self) -> None:
        """before-send: take a token once the bucket is on."""
        if self.enabled:
            await self._token_bucket.acquire()

    def on_receiving_response(self, throttled: bool) -> None:
        """needs-retry: every answer (or failure to get one) adjusts the bucket's rate."""
        measured_rate = self._rate_clocker.record()
        timestamp = self._clock()
        if not throttled:
            new_rate = self._rate_adjustor.success_received(timestamp)
        else:
            if not self.enabled:
                rate_to_use = measured_rate
            else:
                rate_to_use = min(measured_rate, self._token_bucket.max_rate)
            new_rate = self._rate_adjustor.error_received(rate_to_use, timestamp)
            self.enabled = True
        self._token_bucket.max_rate = min(new_rate, self.MAX_RATE_ADJUST_SCALE * measured_rate)


class RetryQuota:
    """botocore.retries.quota.RetryQuota."""

    INITIAL_CAPACITY = 500

    def __init__(self, initial_capacity: int = INITIAL_CAPACITY) -> None:
        self._max_capacity = initial_capacity
        self.available_capacity = initial_capacity

    def acquire(self, capacity_amount: int) -> bool:
        """Take ``capacity_amount`` for a retry; False when there is not that much left."""
        if capacity_amount > self.available_capacity:
            return False
        self.available_capacity -= capacity_amount
        return True

    def release(self, capacity_amount: int) -> None:
        """Give capacity back, up to the initial capacity."""
        amount = min(self._max_capacity - self.available_capacity, capacity_amount)
        self.available_capacity += amount

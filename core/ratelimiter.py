"""Token-bucket rate limiting of device I/O, with Firecracker's semantics.

A `RateLimiter` has up to two `TokenBucket`s, one counting bytes (`bandwidth`) and one
counting operations (`ops`), configured like the API's RateLimiter object (`size`,
`refill_time` in ms, `one_time_burst`). Upstream's rules, which this follows:

* A bucket with `size` 0 or `refill_time` 0 does not limit (as if absent).
* A bucket starts full (`size` tokens) plus a `one_time_burst` credit that is spent first
  and never refills; refilling starts once that credit is gone. Tokens refill continuously
  at `size` per `refill_time`, never beyond `size`.
* Asking for more than is left fails and blocks the limiter for 100 ms, after which the
  device retries; asking for more than the whole bucket is allowed once ("over-consumption"):
  the bucket is emptied and the limiter blocks for as long as refilling the excess takes.
* A blocked limiter refuses everything until its timer (on the VM clock) runs
  `on_unblocked`, which the device uses to resume its queue.

Time comes from the device's `VirtualClock` (nanoseconds), so tests drive it by hand.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable

from petard.core.clock import TimerHandle, VirtualClock

__all__ = ["BucketConfig", "RateLimiter", "TokenBucket"]

log = logging.getLogger(__name__)

NS_PER_MS = 1_000_000
RETRY_INTERVAL_NS = 100 * NS_PER_MS  # upstream's REFILL_TIMER_INTERVAL_MS


@dataclass(frozen=True)
class BucketConfig:
    """One bucket as configured through the API (`refill_time` in milliseconds)."""

    size: int
    refill_time: int
    one_time_burst: int = 0

    @classmethod
    def from_api(cls, bucket: Any) -> "BucketConfig | None":
        """From an API TokenBucket (attributes or a dict); None when absent."""
        if bucket is None:
            return None
        get = bucket.get if isinstance(bucket, dict) else lambda name: getattr(bucket, name, None)
        return cls(int(get("size") or 0), int(get("refill_time") or 0), int(get("one_time_burst") or 0))


class TokenBucket:
    """One bucket; `reduce(tokens)` returns "ok", "fail" or the over-consumption ratio."""

    def __init__(self, config: BucketConfig, now_ns: int) -> None:
        self.size = config.size
        self.refill_time_ns = config.refill_time * NS_PER_MS
        self.one_time_burst = config.one_time_burst
        self.budget = config.size
        self.last_update_ns = now_ns

    def refill(self, now_ns: int) -> None:
        elapsed = now_ns - self.last_update_ns
        if elapsed <= 0:
            return
        if self.one_time_burst > 0:  # refilling starts only once the initial credit is spent
            self.last_update_ns = now_ns
            return
        added = elapsed * self.size // self.refill_time_ns
        if added:
            # Only the time that produced whole tokens is consumed, so slow trickles add up.
            self.last_update_ns += added * self.refill_time_ns // self.size
            self.budget = min(self.size, self.budget + added)
        if self.budget == self.size:
            self.last_update_ns = now_ns

    def reduce(self, tokens: int, now_ns: int) -> str | float:
        if self.one_time_burst > 0:
            if self.one_time_burst >= tokens:
                self.one_time_burst -= tokens
                self.last_update_ns = now_ns
                return "ok"
            tokens -= self.one_time_burst
            self.one_time_burst = 0
            self.last_update_ns = now_ns
        if tokens > self.budget:
            self.refill(now_ns)
            if tokens > self.size:
                log.error("Consumed %d tokens from bucket of size %d", tokens, self.size)
                tokens -= self.budget
                self.budget = 0
                return tokens / self.size
            if tokens > self.budget:
                return "fail"
        self.budget -= tokens
        return "ok"

    def give_back(self, tokens: int) -> None:
        self.budget = min(self.size, self.budget + tokens)


class RateLimiter:
    """Bandwidth and ops buckets plus the "blocked" timer (module docstring)."""

    def __init__(self, clock: VirtualClock, bandwidth: BucketConfig | None = None,
                 ops: BucketConfig | None = None, on_unblocked: Callable[[], None] | None = None) -> None:
        self.clock = clock
        now = clock.now_ns()
        self.bandwidth = self._bucket(bandwidth, now)
        self.ops = self._bucket(ops, now)
        self.on_unblocked = on_unblocked
        self._timer: TimerHandle | None = None

    @classmethod
    def from_api(cls, config: Any, clock: VirtualClock,
                 on_unblocked: Callable[[], None] | None = None) -> "RateLimiter":
        """From an API RateLimiter object (or dict, or None for "unlimited")."""
        if config is None:
            return cls(clock, on_unblocked=on_unblocked)
        get = config.get if isinstance(config, dict) else lambda name: getattr(config, name, None)
        return cls(clock, BucketConfig.from_api(get("bandwidth")), BucketConfig.from_api(get("ops")),
                   on_unblocked)

    @staticmethod
    def _bucket(config: BucketConfig | None, now_ns: int) -> TokenBucket | None:
        if config is None or config.size == 0 or config.refill_time == 0:
            return None
        return TokenBucket(config, now_ns)

    @property
    def limits(self) -> bool:
        return self.bandwidth is not None or self.ops is not None

    @property
    def blocked(self) -> bool:
        return self._timer is not None

    def consume(self, bytes_: int = 0, ops: int = 0) -> bool:
        """Take `ops` operation tokens and `bytes_` bandwidth tokens, all or nothing."""
        if self._timer is not None:
            return False
        now = self.clock.now_ns()
        if not self._consume_one(self.ops, ops, now):
            return False
        if not self._consume_one(self.bandwidth, bytes_, now):
            if self.ops is not None and ops:
                self.ops.give_back(ops)
            return False
        return True

    def _consume_one(self, bucket: TokenBucket | None, tokens: int, now: int) -> bool:
        if bucket is None or tokens == 0:
            return True
        result = bucket.reduce(tokens, now)
        if result == "ok":
            return True
        if result == "fail":
            self._block(RETRY_INTERVAL_NS)
            return False
        self._block(int(result * bucket.refill_time_ns))  # over-consumption: allowed, then wait
        return True

    def _block(self, delay_ns: int) -> None:
        if self._timer is None:
            self._timer = self.clock.call_later(max(delay_ns, 1), self._unblock)

    def _unblock(self) -> None:
        self._timer = None
        if self.on_unblocked is not None:
            self.on_unblocked()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

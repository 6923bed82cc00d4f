"""The token-bucket rate limiter on a manual VM clock: upstream's semantics for refill,
one-time burst, over-consumption, the 100 ms retry timer and disabled buckets."""

from __future__ import annotations

from petard.core.clock import VirtualClock
from petard.core.ratelimiter import RETRY_INTERVAL_NS, BucketConfig, RateLimiter

MS = 1_000_000


def limiter(bandwidth=None, ops=None):
    clock = VirtualClock.manual()
    unblocked = []
    return clock, RateLimiter(clock, bandwidth, ops, lambda: unblocked.append(clock.now_ns())), unblocked


def test_zero_size_or_refill_time_means_unlimited():
    _, unlimited, _ = limiter(BucketConfig(0, 100), BucketConfig(10, 0))
    assert not unlimited.limits
    assert all(unlimited.consume(10**9, 10**6) for _ in range(10))


def test_bucket_starts_full_then_blocks_and_retries_after_100ms():
    clock, rl, unblocked = limiter(ops=BucketConfig(size=10, refill_time=1000))
    assert all(rl.consume(ops=1) for _ in range(10))
    assert not rl.consume(ops=1)
    assert rl.blocked
    clock.advance(RETRY_INTERVAL_NS)
    assert unblocked == [RETRY_INTERVAL_NS] and not rl.blocked
    assert rl.consume(ops=1)  # 100 ms refilled exactly one token (10 per second)
    assert not rl.consume(ops=1)


def test_refill_is_capped_at_the_size():
    clock, rl, _ = limiter(bandwidth=BucketConfig(size=1000, refill_time=100))
    assert rl.consume(bytes_=1000)
    clock.advance(10_000 * MS)
    assert rl.consume(bytes_=1000)
    assert not rl.consume(bytes_=1)


def test_one_time_burst_is_spent_first_and_never_refills():
    clock, rl, _ = limiter(bandwidth=BucketConfig(size=100, refill_time=1000, one_time_burst=500))
    assert rl.consume(bytes_=500)  # the burst
    assert rl.consume(bytes_=100)  # the bucket
    assert not rl.consume(bytes_=1)
    clock.advance(1000 * MS)
    assert rl.consume(bytes_=100)
    assert not rl.consume(bytes_=1)


def test_over_consumption_is_allowed_then_blocks_for_the_excess():
    clock, rl, unblocked = limiter(bandwidth=BucketConfig(size=1000, refill_time=1000))
    assert rl.consume(bytes_=3000)  # three buckets' worth: goes through
    assert rl.blocked
    clock.advance(1999 * MS)
    assert unblocked == []
    clock.advance(1 * MS)  # (3000 - 1000) / 1000 * 1000 ms
    assert unblocked == [2000 * MS]


def test_ops_token_is_given_back_when_bandwidth_refuses():
    clock, rl, _ = limiter(bandwidth=BucketConfig(size=100, refill_time=1000), ops=BucketConfig(size=1, refill_time=1000))
    assert rl.consume(bytes_=100, ops=0)
    assert not rl.consume(bytes_=50, ops=1)  # bandwidth empty: the op token must come back
    clock.advance(RETRY_INTERVAL_NS)
    clock.advance(400 * MS)  # 50 bytes refilled
    assert rl.consume(bytes_=50, ops=1)


def test_from_api_objects_and_dicts():
    clock = VirtualClock.manual()
    rl = RateLimiter.from_api({"bandwidth": {"size": 10, "refill_time": 5, "one_time_burst": None}}, clock)
    assert rl.bandwidth is not None and rl.ops is None and rl.bandwidth.one_time_burst == 0
    assert not RateLimiter.from_api({}, clock).limits
    assert not RateLimiter.from_api(None, clock).limits

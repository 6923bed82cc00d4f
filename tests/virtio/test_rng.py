"""virtio-rng: random bytes into the driver's writable buffers, at most 64 KiB per request,
nothing into readable ones, and its rate limiter."""

from __future__ import annotations

from petard.plugins.virtio_rng import MAX_REQUEST_BYTES


def test_fills_writable_buffers_across_descriptors(rng):
    rng.start()
    parts = [rng.buffer(100, writable=True), rng.buffer(300, writable=True)]
    head = rng.queues[0].submit(parts)
    rng.notify()
    assert rng.queues[0].take_used() == [(head, 400)]
    assert all(rng.contents(part) != bytes(part.length) for part in parts)
    assert rng.contents(parts[0]) != rng.contents(parts[1])[:100]


def test_requests_are_capped_at_64_kib(rng):
    rng.start()
    big = rng.buffer(MAX_REQUEST_BYTES + 4096, writable=True)
    head = rng.queues[0].submit([big])
    rng.notify()
    assert rng.queues[0].take_used() == [(head, MAX_REQUEST_BYTES)]
    assert rng.contents(big)[MAX_REQUEST_BYTES:] == bytes(4096)


def test_readable_buffers_are_left_alone(rng):
    rng.start()
    readable = rng.buffer(b"\xaa" * 64)
    head = rng.queues[0].submit([readable])
    rng.notify()
    assert rng.queues[0].take_used() == [(head, 0)]
    assert rng.contents(readable) == b"\xaa" * 64


def test_bandwidth_limit_defers_requests(make_bench):
    bench = make_bench("virtio-rng", rate_limiter={"bandwidth": {"size": 1000, "refill_time": 1000}})
    bench.start()
    for _ in range(3):
        bench.queues[0].submit([bench.buffer(400, writable=True)])
    bench.notify()
    assert len(bench.queues[0].take_used()) == 2  # 800 of 1000 tokens; the third must wait
    bench.clock.advance(100_000_000)  # retry after 100 ms: 100 tokens refilled, 300 short
    assert bench.queues[0].take_used() == []
    bench.clock.advance(300_000_000)
    assert len(bench.queues[0].take_used()) == 1
    assert bench.interrupts() == 2

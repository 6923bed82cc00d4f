"""VirtualClock: deterministic stepping, ordering, cancellation, cross-thread posting."""

from __future__ import annotations

import threading
import time

import pytest

from petard.core.clock import VirtualClock


def test_manual_clock_runs_timers_in_order_at_their_deadlines():
    clock = VirtualClock.manual()
    seen = []
    clock.call_later(300, lambda: seen.append(("c", clock.now_ns())))
    clock.call_at(100, lambda: seen.append(("a", clock.now_ns())))
    clock.call_at(100, lambda: seen.append(("b", clock.now_ns())))  # same time: FIFO
    assert clock.advance(99) == 0 and seen == []
    assert clock.advance(201) == 3
    assert seen == [("a", 100), ("b", 100), ("c", 300)]
    assert clock.now_ns() == 300


def test_callbacks_can_schedule_more_work_within_the_same_advance():
    clock = VirtualClock.manual()
    ticks = []

    def tick():
        ticks.append(clock.now_ns())
        if len(ticks) < 5:
            clock.call_later(10, tick)

    clock.call_later(10, tick)
    clock.advance(1000)
    assert ticks == [10, 20, 30, 40, 50]


def test_cancel_and_next_deadline():
    clock = VirtualClock.manual()
    fired = []
    early = clock.call_at(50, fired.append, "early")
    clock.call_at(80, fired.append, "late")
    assert clock.next_deadline_ns() == 50
    early.cancel()
    assert clock.next_deadline_ns() == 80
    clock.advance(100)
    assert fired == ["late"]
    assert clock.next_deadline_ns() is None


def test_wall_time_follows_the_clock():
    clock = VirtualClock.manual(wall_origin_ns=1_000_000_000_000)
    clock.advance(5)
    assert clock.wall_ns() == 1_000_000_000_005


def test_advance_is_only_for_manual_clocks():
    with pytest.raises(RuntimeError):
        VirtualClock().advance(1)
    with pytest.raises(ValueError):
        VirtualClock.manual().advance(-1)


def test_real_time_clock_runs_due_timers_and_exposes_a_monotonic_deadline():
    clock = VirtualClock()
    fired = []
    handle = clock.call_later(1_000_000, fired.append, 1)  # 1 ms
    deadline = clock.next_deadline()
    assert time.monotonic() < deadline < time.monotonic() + 0.002
    assert clock.run_due() == 0
    time.sleep(0.002)
    assert clock.run_due() == 1 and fired == [1]
    handle.cancel()  # after firing: harmless
    assert clock.wall_ns() == pytest.approx(time.time_ns(), abs=50_000_000)


def test_work_posted_from_another_thread_runs_on_the_driver_and_wakes_it():
    clock = VirtualClock()
    woken = threading.Event()
    clock.set_wakeup(woken.set)
    ran_on = []
    poster = threading.Thread(target=clock.call_soon_threadsafe,
                              args=(lambda: ran_on.append(threading.get_ident()),))
    poster.start()
    poster.join()
    assert woken.is_set() and ran_on == []
    assert clock.next_deadline_ns() is not None
    assert clock.run_due() == 1
    assert ran_on == [threading.get_ident()]


def test_a_failing_callback_is_logged_with_its_device_and_the_clock_goes_on(caplog):
    from petard.core.device import Device, DeviceType
    from petard.core.layout import DRAM_START
    from petard.core.memory import GuestMemory

    class Ticker(Device):
        def boom(self):
            raise RuntimeError("tick failed")

    clock = VirtualClock.manual()
    memory = GuestMemory(DRAM_START, 1 << 16)
    try:
        ticker = DeviceType("ticker", Ticker, "acme-timers").create(
            instance_name="tick0", irqs=(), memory=memory, clock=clock)
        fired = []
        clock.call_later(10, ticker.boom)
        clock.call_later(20, fired.append, "after")
        with caplog.at_level("ERROR", logger="petard.core.clock"):
            assert clock.advance(30) == 2
        assert fired == ["after"]
        (record,) = caplog.records
        assert "'tick0'" in record.getMessage() and "acme-timers" in record.getMessage()
    finally:
        memory.close()

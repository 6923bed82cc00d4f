"""A clock and timer queue for device models, driven by the VMM's run loop.

Devices read time with `now_ns()` (nanoseconds since the VM's clock started) or `wall_ns()`
(host wall-clock time, for RTCs) and schedule work with `call_at` / `call_later`. Timer
callbacks never run on their own: whoever drives the VM runs them, so device code only ever
runs on the thread that also delivers MMIO accesses and needs no locks.

How a backend drives it:

* Real time (the default source is `time.monotonic_ns`): at every point where the vCPUs are
  stopped anyway (the end of an emulation slice on Unicorn, a KVM exit, an idle wait), call
  `run_due()`. Before sleeping while the guest idles, bound the sleep by `next_deadline()`
  (seconds on the `time.monotonic()` scale; the clock is the backend's `DeviceEventSource`)
  and register `set_wakeup(fn)` so that work posted from another thread with
  `call_soon_threadsafe` (e.g. console input) cuts the sleep short.
* Tests use `VirtualClock.manual()`: time stands still until `advance(dt_ns)`, which runs
  every timer due on the way, each one seeing `now_ns()` equal to its own deadline.
"""

from __future__ import annotations

import collections
import heapq
import itertools
import logging
import time
from typing import Any, Callable

log = logging.getLogger(__name__)

__all__ = ["TimerHandle", "VirtualClock"]


class TimerHandle:
    """A scheduled callback; `cancel()` it to drop it."""

    __slots__ = ("when_ns", "_callback", "_args", "cancelled")

    def __init__(self, when_ns: int, callback: Callable[..., Any], args: tuple) -> None:
        self.when_ns = when_ns
        self._callback = callback
        self._args = args
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True

    def __repr__(self) -> str:
        state = " cancelled" if self.cancelled else ""
        return f"<TimerHandle at {self.when_ns} ns {self._callback!r}{state}>"


def _run_contained(callback: Callable[..., Any], args: tuple) -> None:
    """Run a callback; an exception is logged, naming the device it belongs to, and dropped,
    so that a faulty device model cannot take the VM's run loop down."""
    try:
        callback(*args)
    except Exception:
        owner = getattr(callback, "__self__", None)
        context = getattr(owner, "ctx", None)
        if context is not None:
            culprit = f"device {context.name!r} of plugin {context.plugin!r}"
        else:
            culprit = getattr(callback, "__qualname__", repr(callback))
        log.exception("timer callback %r of %s failed", callback, culprit)


class _ManualSource:
    """A time source that only moves when told to."""

    def __init__(self) -> None:
        self.now = 0

    def __call__(self) -> int:
        return self.now


class VirtualClock:
    """Monotonic VM time plus a queue of timers run by `run_due()` / `advance()`."""

    def __init__(
        self,
        source: Callable[[], int] = time.monotonic_ns,
        *,
        wall_origin_ns: int | None = None,
    ) -> None:
        self._source = source
        self._origin = source()
        self._wall_origin = time.time_ns() if wall_origin_ns is None else wall_origin_ns
        self._timers: list[tuple[int, int, TimerHandle]] = []
        self._sequence = itertools.count()
        self._posted: collections.deque[tuple[Callable[..., Any], tuple]] = collections.deque()
        self._wakeup: Callable[[], None] | None = None

    @classmethod
    def manual(cls, *, wall_origin_ns: int = 0) -> VirtualClock:
        """A clock frozen at 0 until `advance()`; wall time starts at `wall_origin_ns`."""
        return cls(_ManualSource(), wall_origin_ns=wall_origin_ns)

    def now_ns(self) -> int:
        """Nanoseconds since the clock started."""
        return self._source() - self._origin

    def wall_ns(self) -> int:
        """Host wall-clock time (ns since the Unix epoch) as seen by the VM."""
        return self._wall_origin + self.now_ns()

    def call_at(self, when_ns: int, callback: Callable[..., Any], *args: Any) -> TimerHandle:
        """Run `callback(*args)` once `now_ns()` has reached `when_ns`."""
        handle = TimerHandle(when_ns, callback, args)
        heapq.heappush(self._timers, (when_ns, next(self._sequence), handle))
        return handle

    def call_later(self, delay_ns: int, callback: Callable[..., Any], *args: Any) -> TimerHandle:
        """Run `callback(*args)` `delay_ns` nanoseconds from now."""
        return self.call_at(self.now_ns() + delay_ns, callback, *args)

    def call_soon_threadsafe(self, callback: Callable[..., Any], *args: Any) -> None:
        """From any thread: run `callback(*args)` at the next `run_due()` on the VM's thread."""
        self._posted.append((callback, args))
        wakeup = self._wakeup
        if wakeup is not None:
            wakeup()

    def set_wakeup(self, wakeup: Callable[[], None] | None) -> None:
        """Install what `call_soon_threadsafe` calls to cut an idle wait short."""
        self._wakeup = wakeup

    def next_deadline_ns(self) -> int | None:
        """When `run_due()` next has work: a clock time, `now_ns()` if posted work is waiting,
        or None when nothing is scheduled."""
        if self._posted:
            return self.now_ns()
        timers = self._timers
        while timers and timers[0][2].cancelled:
            heapq.heappop(timers)
        return timers[0][0] if timers else None

    def next_deadline(self) -> float | None:
        """`next_deadline_ns()` in the time source's own seconds (`time.monotonic()` for a
        real-time clock): the `DeviceEventSource` view backends use to bound idle waits."""
        deadline = self.next_deadline_ns()
        return None if deadline is None else (deadline + self._origin) / 1e9

    def run_due(self) -> int:
        """Run posted work and every timer whose time has come; return how many ran.

        Timers scheduled by callbacks for a time already reached run in the same call.
        """
        ran = 0
        posted = self._posted
        while posted:
            callback, args = posted.popleft()
            _run_contained(callback, args)
            ran += 1
        timers = self._timers
        now = self.now_ns()
        while timers and timers[0][0] <= now:
            handle = heapq.heappop(timers)[2]
            if not handle.cancelled:
                handle.cancelled = True  # a handle fires once; cancel() afterwards is harmless
                _run_contained(handle._callback, handle._args)
                ran += 1
            now = self.now_ns()
        return ran

    def advance(self, delay_ns: int) -> int:
        """Manual clocks only: move time forward by `delay_ns`, running timers in order, each
        at its own deadline. Returns how many callbacks ran."""
        source = self._source
        if not isinstance(source, _ManualSource):
            raise RuntimeError("advance() is only for clocks made with VirtualClock.manual()")
        if delay_ns < 0:
            raise ValueError("time only moves forward")
        target = source.now + delay_ns
        ran = self.run_due()
        while True:
            deadline = self.next_deadline_ns()
            if deadline is None or deadline > target - self._origin:
                break
            source.now = max(source.now, deadline + self._origin)
            ran += self.run_due()
        source.now = target
        return ran + self.run_due()

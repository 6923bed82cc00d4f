"""virtio-balloon: the memory balloon of `PUT /balloon`, as Firecracker builds it.

Queues, in this order: inflate, deflate, then statistics (when `stats_polling_interval_s` is
not 0), free page hinting and free page reporting (when asked for); each 256 entries.
Features: VERSION_1, DEFLATE_ON_OOM (when `deflate_on_oom`), STATS_VQ, FREE_PAGE_HINTING and
FREE_PAGE_REPORTING as configured. The configuration space is three u32s: the target
(`num_pages`, in 4 KiB pages), the driver's `actual` count, and the free page hinting
command id.

- Inflate: every page number the driver hands over is checked against guest memory and its
  page discarded (`GuestMemory.discard`: it reads as zero afterwards and the host frees it);
  a number outside memory is logged (once) and counted, never applied.
- Deflate: acknowledged; the guest simply uses the pages again.
- Statistics: the device keeps the driver's statistics buffer and hands it back at every
  polling interval, which makes the driver refill it; unknown tags are counted and logged once.
- Free page reporting: the reported ranges are discarded. Free page hinting: host-driven
  runs (`start_hinting`, `stop_hinting`), ranges discarded while the run's command id is
  current.

What the API changes after boot (`set_target_mib`, `set_stats_interval`, the hinting
commands) is called on the VM's thread, and raises `BalloonError` with upstream's texts.
"""

from __future__ import annotations

import struct
from collections import Counter
from dataclasses import dataclass
from typing import Any, Mapping

from petard.devices import (Device, DeviceContext, DeviceRequestError, TimerHandle, VirtioMmioDevice, hookimpl,
                            virtio_spec)

TYPE_NAME = "virtio-balloon"

QUEUE_SIZE = 256
PAGE_SHIFT = 12                     # VIRTIO_BALLOON_PFN_SHIFT: page numbers count 4 KiB pages
PAGES_PER_MIB = 256
MAX_PAGES_IN_DESCRIPTOR = 256
MAX_STATS_TAGS = 256                # a bound on a statistics buffer, in entries

F_STATS_VQ = 1
F_DEFLATE_ON_OOM = 2
F_FREE_PAGE_HINTING = 3
F_FREE_PAGE_REPORTING = 5

FREE_PAGE_HINT_STOP = 0
FREE_PAGE_HINT_DONE = 1

_CONFIG = struct.Struct("<III")     # num_pages, actual, free_page_hint_cmd_id
_ACTUAL_OFFSET = 4
_PFN = struct.Struct("<I")
_STAT = struct.Struct("<HQ")        # virtio_balloon_stat: u16 tag, u64 value, packed
_CMD_ID = 4                         # a hinting command id's length

# virtio_balloon_stat tags (Linux include/uapi/linux/virtio_balloon.h) -> upstream's JSON names.
STAT_NAMES = {0: "swap_in", 1: "swap_out", 2: "major_faults", 3: "minor_faults", 4: "free_memory",
              5: "total_memory", 6: "available_memory", 7: "disk_caches", 8: "hugetlb_allocations",
              9: "hugetlb_failures", 10: "oom_kill", 11: "alloc_stall", 12: "async_scan", 13: "direct_scan",
              14: "async_reclaim", 15: "direct_reclaim"}


class BalloonError(DeviceRequestError):
    """An API request the balloon refuses; the text is upstream's."""


NOT_ACTIVE = "Device not activated yet."
STATS_STATE_CHANGE = "Statistics cannot be enabled/disabled after activation."
STATS_DISABLED = "Received stats query when stats are disabled."
HINTING_DISABLED = "Attempting to use hinting when not enabled"


def too_much_memory(amount_mib: int) -> str:
    return f"Requested memory should be less than {amount_mib}MiB"


@dataclass
class HintingState:
    host_cmd: int = FREE_PAGE_HINT_STOP
    last_cmd_id: int = FREE_PAGE_HINT_STOP
    guest_cmd: int | None = None
    acknowledge_on_finish: bool = True


class VirtioBalloon(VirtioMmioDevice):
    """The memory balloon (module docstring)."""

    device_id = virtio_spec.DEVICE_ID_BALLOON

    def __init__(self, ctx: DeviceContext, *, amount_mib: int = 0, deflate_on_oom: bool = False,
                 stats_polling_interval_s: int = 0, free_page_hinting: bool = False,
                 free_page_reporting: bool = False) -> None:
        names = ["inflate", "deflate"]
        names += ["stats"] if stats_polling_interval_s else []
        names += ["hinting"] if free_page_hinting else []
        names += ["reporting"] if free_page_reporting else []
        self.queue_index = {name: index for index, name in enumerate(names)}
        self.queue_max_sizes = (QUEUE_SIZE,) * len(names)
        super().__init__(ctx)
        self.features = (int(deflate_on_oom) << F_DEFLATE_ON_OOM | int(bool(stats_polling_interval_s)) << F_STATS_VQ
                         | int(free_page_hinting) << F_FREE_PAGE_HINTING
                         | int(free_page_reporting) << F_FREE_PAGE_REPORTING)
        self.num_pages = amount_mib * PAGES_PER_MIB
        self.actual_pages = 0
        self.stats_interval_s = stats_polling_interval_s
        self.latest_stats: dict[str, int] = {}
        self.hinting = HintingState()
        self.counters: Counter[str] = Counter()
        self._stats_head: int | None = None
        self._stats_timer: TimerHandle | None = None
        self._warned: set[str] = set()

    # --- virtio --------------------------------------------------------------------------

    def device_features(self) -> int:
        return self.features

    def config_space(self) -> bytes:
        return _CONFIG.pack(self.num_pages, self.actual_pages, self.hinting.host_cmd)

    def write_config(self, offset: int, data: bytes) -> None:
        if offset == _ACTUAL_OFFSET and len(data) == 4:
            self.actual_pages = int.from_bytes(data, "little")
        else:
            self.unhandled_access("write", virtio_spec.CONFIG_SPACE + offset, len(data), int.from_bytes(data, "little"))

    def activate(self) -> None:
        if self.stats_interval_s:
            self._arm_stats_timer()

    def reset_device(self) -> None:
        self._cancel_stats_timer()
        self._stats_head = None
        self.actual_pages = 0
        self.latest_stats = {}
        self.hinting = HintingState()

    def process_queue(self, index: int) -> None:
        name = next(name for name, position in self.queue_index.items() if position == index)
        getattr(self, f"_serve_{name}")(self.queues[index])

    # --- the queues ----------------------------------------------------------------------

    def _serve_inflate(self, queue) -> None:
        memory = self.ctx.memory
        served = False
        while (chain := queue.pop()) is not None:
            for descriptor in chain.readable:
                if descriptor.length % _PFN.size or descriptor.length > MAX_PAGES_IN_DESCRIPTOR * _PFN.size:
                    self._once("bad-inflate-descriptor", "inflate descriptor of %d bytes skipped", descriptor.length)
                    self.counters["bad_descriptors"] += 1
                    continue
                numbers = [pfn for (pfn,) in _PFN.iter_unpack(memory.read(descriptor.address, descriptor.length))]
                self._discard_pages(numbers)
            queue.add_used(chain.head, 0)
            self.counters["inflate_count"] += 1
            served = True
        if served:
            self.signal_used(queue)

    def _discard_pages(self, numbers: list[int]) -> None:
        """Discard the pages, a run of consecutive page numbers at a time (one madvise each);
        numbers outside guest memory are counted and skipped, duplicates discarded once."""
        memory = self.ctx.memory
        first_page, end_page = memory.base >> PAGE_SHIFT, memory.end >> PAGE_SHIFT
        inside = sorted({pfn for pfn in numbers if first_page <= pfn < end_page})
        if len(inside) < len(set(numbers)):
            self.counters["bad_page_numbers"] += len(set(numbers)) - len(inside)
            self._once("bad-pfn", "inflated page numbers outside guest memory ignored (e.g. %#x)",
                       next(pfn for pfn in numbers if not first_page <= pfn < end_page))
        start = previous = None
        for pfn in inside + [None]:
            if pfn is not None and previous is not None and pfn == previous + 1:
                previous = pfn
                continue
            if start is not None:
                memory.discard(start << PAGE_SHIFT, (previous - start + 1) << PAGE_SHIFT)
            start = previous = pfn
        self.counters["inflated_pages"] += len(inside)

    def _serve_deflate(self, queue) -> None:
        served = False
        while (chain := queue.pop()) is not None:
            queue.add_used(chain.head, 0)
            self.counters["deflate_count"] += 1
            served = True
        if served:
            self.signal_used(queue)

    def _serve_stats(self, queue) -> None:
        memory = self.ctx.memory
        while (chain := queue.pop()) is not None:
            if self._stats_head is not None:        # a driver that posts two: give one back
                self._once("two-stats-buffers", "driver posted a second statistics buffer")
                queue.add_used(self._stats_head, 0)
                self.signal_used(queue)
            self._stats_head = chain.head
            length = chain.readable_length
            if length > MAX_STATS_TAGS * _STAT.size:
                self._once("big-stats", "statistics buffer of %d bytes skipped", length)
                continue
            data = b"".join(memory.read(d.address, d.length) for d in chain.readable)
            for tag, value in _STAT.iter_unpack(data[:len(data) // _STAT.size * _STAT.size]):
                name = STAT_NAMES.get(tag)
                if name is None:
                    self.counters["stats_update_fails"] += 1
                    self._once(f"tag-{tag}", "unknown statistics tag %d", tag)
                else:
                    self.latest_stats[name] = value
            self.counters["stats_updates_count"] += 1

    def _serve_hinting(self, queue) -> None:
        memory = self.ctx.memory
        served = complete = False
        host_cmd = self.hinting.host_cmd
        while (chain := queue.pop()) is not None:
            for descriptor in chain.readable + chain.writable:
                if descriptor.length == _CMD_ID:
                    command = memory.read_u32(descriptor.address)
                    self.hinting.guest_cmd = command
                    complete = command in (FREE_PAGE_HINT_STOP, FREE_PAGE_HINT_DONE)
                    continue
                if host_cmd in (FREE_PAGE_HINT_STOP, FREE_PAGE_HINT_DONE) or self.hinting.guest_cmd != host_cmd:
                    continue                        # a range of a run that is over
                self.counters["free_page_hint_freed"] += self._discard_range(descriptor)
            queue.add_used(chain.head, 0)
            served = True
        if served:
            self.signal_used(queue)
        if complete and self.hinting.acknowledge_on_finish and self.hinting.host_cmd not in (
                FREE_PAGE_HINT_STOP, FREE_PAGE_HINT_DONE):
            self._set_hint_cmd(FREE_PAGE_HINT_DONE)

    def _serve_reporting(self, queue) -> None:
        served = False
        while (chain := queue.pop()) is not None:
            for descriptor in chain.readable + chain.writable:
                self.counters["free_page_report_freed"] += self._discard_range(descriptor)
            queue.add_used(chain.head, 0)
            self.counters["free_page_report_count"] += 1
            served = True
        if served:
            self.signal_used(queue)

    def _discard_range(self, descriptor) -> int:
        memory = self.ctx.memory
        if not memory.contains(descriptor.address, descriptor.length):
            self.counters["bad_ranges"] += 1
            self._once("bad-range", "range %#x+%#x lies outside guest memory; ignored",
                       descriptor.address, descriptor.length)
            return 0
        return memory.discard(descriptor.address, descriptor.length)

    # --- statistics timer ----------------------------------------------------------------

    def _arm_stats_timer(self) -> None:
        self._cancel_stats_timer()
        self._stats_timer = self.ctx.clock.call_later(self.stats_interval_s * 1_000_000_000, self._stats_tick)

    def _cancel_stats_timer(self) -> None:
        if self._stats_timer is not None:
            self._stats_timer.cancel()
            self._stats_timer = None

    def _stats_tick(self) -> None:
        self._stats_timer = None
        self._request_stats()
        if self.activated and self.stats_interval_s:
            self._arm_stats_timer()

    def _request_stats(self) -> None:
        """Hand the statistics buffer back: the driver refills it and posts it again."""
        if self._stats_head is None or not self.activated:
            return
        queue = self.queues[self.queue_index["stats"]]
        queue.add_used(self._stats_head, 0)
        self._stats_head = None
        self.signal_used(queue)

    # --- what the API asks after boot (on the VM's thread) -------------------------------

    def _require_active(self) -> None:
        if not self.activated:
            raise BalloonError(NOT_ACTIVE)

    def set_target_mib(self, amount_mib: int) -> None:
        self._require_active()
        if amount_mib * (1 << 20) > self.ctx.memory.size:
            raise BalloonError(too_much_memory(amount_mib))
        self.num_pages = amount_mib * PAGES_PER_MIB
        self.signal_config_change()

    def set_stats_interval(self, interval_s: int) -> None:
        if interval_s == self.stats_interval_s:
            return
        if self.stats_interval_s == 0 or interval_s == 0:
            raise BalloonError(STATS_STATE_CHANGE)
        self._request_stats()
        self.stats_interval_s = interval_s
        if self.activated:
            self._arm_stats_timer()

    def statistics(self) -> dict[str, int]:
        """Upstream's statistics body: the target and actual sizes, then what the driver said."""
        if not self.stats_interval_s:
            raise BalloonError(STATS_DISABLED)
        self._require_active()
        return {"target_pages": self.num_pages, "actual_pages": self.actual_pages,
                "target_mib": self.num_pages // PAGES_PER_MIB, "actual_mib": self.actual_pages // PAGES_PER_MIB,
                **{name: self.latest_stats[name] for name in STAT_NAMES.values() if name in self.latest_stats}}

    def config(self) -> dict[str, Any]:
        """The configuration as `GET /balloon` shows it after boot (the current target)."""
        return {"amount_mib": self.num_pages // PAGES_PER_MIB,
                "deflate_on_oom": bool(self.features >> F_DEFLATE_ON_OOM & 1),
                "stats_polling_interval_s": self.stats_interval_s,
                "free_page_hinting": bool(self.features >> F_FREE_PAGE_HINTING & 1),
                "free_page_reporting": bool(self.features >> F_FREE_PAGE_REPORTING & 1)}

    def _require_hinting(self) -> None:
        if not self.features >> F_FREE_PAGE_HINTING & 1:
            raise BalloonError(HINTING_DISABLED)

    def start_hinting(self, acknowledge_on_stop: bool = True) -> None:
        self._require_hinting()
        command = (self.hinting.last_cmd_id + 1) & 0xFFFF_FFFF
        if command <= FREE_PAGE_HINT_DONE:           # 0 and 1 are reserved
            command = FREE_PAGE_HINT_DONE + 1
        self._require_active()
        self.hinting.acknowledge_on_finish = acknowledge_on_stop
        self.hinting.last_cmd_id = command
        self._set_hint_cmd(command)

    def hinting_status(self) -> dict[str, Any]:
        self._require_hinting()
        return {"host_cmd": self.hinting.host_cmd, "guest_cmd": self.hinting.guest_cmd}

    def stop_hinting(self) -> None:
        self._require_hinting()
        self._require_active()
        self._set_hint_cmd(FREE_PAGE_HINT_DONE)

    def _set_hint_cmd(self, command: int) -> None:
        self.hinting.host_cmd = command
        self.signal_config_change()

    # --- the rest of the device API ------------------------------------------------------

    def _once(self, key: str, message: str, *args: Any) -> None:
        if key not in self._warned:
            self._warned.add(key)
            self.ctx.log.warning("%s: " + message + " (further ones are only counted)", self.ctx.name, *args)

    def start(self) -> None:
        if self.activated and self.stats_interval_s:      # restored while running
            self._arm_stats_timer()

    def stop(self) -> None:
        self._cancel_stats_timer()

    def save_state(self) -> dict[str, Any]:
        return {**super().save_state(), "num_pages": self.num_pages, "actual_pages": self.actual_pages,
                "stats_interval_s": self.stats_interval_s, "stats_head": self._stats_head,
                "latest_stats": dict(self.latest_stats), "hinting": vars(self.hinting).copy()}

    def restore_state(self, state: Mapping[str, Any]) -> None:
        super().restore_state(state)
        self.num_pages, self.actual_pages = state["num_pages"], state["actual_pages"]
        self.stats_interval_s = state["stats_interval_s"]
        self._stats_head = state["stats_head"]
        self.latest_stats = dict(state["latest_stats"])
        self.hinting = HintingState(**state["hinting"])
        if self.hinting.host_cmd != FREE_PAGE_HINT_STOP:
            self.hinting.host_cmd = FREE_PAGE_HINT_DONE     # as upstream: a restored guest keeps its hinted pages


@hookimpl
def petard_device_types() -> dict[str, type[Device]]:
    return {TYPE_NAME: VirtioBalloon}

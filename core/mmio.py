"""The MMIO bus: which device answers which guest-physical address range.

Each device is placed as an `MmioRegion`. A region forwards accesses to its device's
`mmio_read(offset, size)` / `mmio_write(offset, size, value)` and contains its failures:
a device that raises is marked failed, the failure is logged once naming the device and its
plugin, and from then on the region reads as zero and ignores writes. The guest and the VMM
keep running.

Backends use the bus in one of two ways, both of which go through a region's `read`/`write`:

* KVM: on an MMIO exit look the region up in `bus.page_table()` (one dict lookup by 4 KiB
  page, for pages a region covers entirely) and call it, or else call
  `bus.read(addr, size)` / `bus.write(addr, size, value)`, which also bisects over region
  bases and logs unmapped accesses.
* Unicorn: map each of `bus.regions()` with `mmio_map` and call `region.read(offset, size)` /
  `region.write(offset, size, value)` from the callbacks (the offset is region-relative).

Device code is not thread-safe: a backend running vCPUs on several threads must serialise
its calls into the bus (and `VirtualClock.run_due()`) with one lock.
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Protocol

from petard.core.layout import PAGE_SHIFT

__all__ = ["MmioBus", "MmioDevice", "MmioOverlapError", "MmioRegion"]

log = logging.getLogger(__name__)

# How many distinct unmapped addresses get a log line; later ones are only counted.
_MAX_LOGGED_UNMAPPED = 64

# Regions larger than _MAX_CACHED_PAGES pages are found with the bisect, not the page table.
_MAX_CACHED_PAGES = 1024


class MmioDevice(Protocol):
    def mmio_read(self, offset: int, size: int) -> int: ...
    def mmio_write(self, offset: int, size: int, value: int) -> None: ...


class MmioOverlapError(ValueError):
    """A new region overlaps one already on the bus."""


def describe_device(device: Any, name: str | None = None) -> str:
    """How logs and errors name a device: instance name, class and, for devices made
    through the device API, the plugin that provided it."""
    context = getattr(device, "ctx", None)
    name = name or getattr(context, "name", None)
    plugin = getattr(context, "plugin", None)
    label = f"device {name!r} ({type(device).__name__})" if name else f"device {type(device).__name__}"
    return f"{label} of plugin {plugin!r}" if plugin is not None else label


class MmioRegion:
    """One device's window `[base, base + size)` on the bus."""

    __slots__ = ("base", "size", "end", "device", "name", "description", "failed", "failure",
                 "_read", "_write")

    def __init__(self, base: int, size: int, device: MmioDevice, name: str | None = None) -> None:
        self.base = base
        self.size = size
        self.end = base + size
        self.device = device
        context = getattr(device, "ctx", None)
        self.name: str = name or getattr(context, "name", None) or type(device).__name__
        self.description = describe_device(device, self.name)
        self.failed = False
        self.failure: BaseException | None = None
        self._read = device.mmio_read
        self._write = device.mmio_write

    def __repr__(self) -> str:
        state = " FAILED" if self.failed else ""
        return f"MmioRegion({self.base:#x}, {self.size:#x}, {self.description}{state})"

    def read(self, offset: int, size: int) -> int:
        """The device's answer to a read at region offset `offset`; 0 once it has failed.

        An answer that is not an int fitting in `size` bytes fails the device like an
        exception does (a backend could not hand it to the guest)."""
        if self.failed:
            return 0
        try:
            value = self._read(offset, size)
        except Exception as exc:
            self._fail(exc, f"read of {size} byte(s) at offset {offset:#x}")
            return 0
        if value.__class__ is int and 0 <= value and not value >> (size << 3):
            return value
        return self._checked_unusual_value(value, offset, size)

    def _checked_unusual_value(self, value: Any, offset: int, size: int) -> int:
        if isinstance(value, int) and 0 <= value < 1 << (size * 8):
            return int(value)  # bool, IntEnum and other int subclasses
        if isinstance(value, int):
            problem = ValueError(f"mmio_read returned {value:#x}, which does not fit in {size} byte(s)")
        else:
            problem = TypeError(f"mmio_read returned {type(value).__name__} {value!r:.60}, not an int")
        self._fail(problem, f"read of {size} byte(s) at offset {offset:#x}")
        return 0

    def write(self, offset: int, size: int, value: int) -> None:
        """Forward a write at region offset `offset`; ignored once the device has failed."""
        if self.failed:
            return
        try:
            self._write(offset, size, value)
        except Exception as exc:
            self._fail(exc, f"write of {size} byte(s) value {value:#x} at offset {offset:#x}")

    def _fail(self, exc: Exception, access: str) -> None:
        self.failed = True
        self.failure = exc
        log.error(
            "%s at %#x failed during a guest %s: %s: %s; the device is disabled "
            "(reads return 0, writes are ignored)",
            self.description, self.base, access, type(exc).__name__, exc,
            exc_info=exc if exc.__traceback__ is not None else None,
        )


class MmioBus:
    """Guest-physical MMIO address space made of non-overlapping device regions."""

    def __init__(self) -> None:
        self._regions: list[MmioRegion] = []
        self._bases: list[int] = []
        self._by_page: dict[int, MmioRegion] = {}
        self._unmapped_logged: set[int] = set()
        self.unmapped_accesses = 0

    def add(self, base: int, size: int, device: MmioDevice, name: str | None = None) -> MmioRegion:
        """Place `device` at `[base, base + size)`; `MmioOverlapError` names both devices."""
        if size <= 0:
            raise ValueError(f"MMIO region size must be positive, got {size:#x}")
        if base < 0:
            raise ValueError(f"MMIO base must be non-negative, got {base:#x}")
        region = MmioRegion(base, size, device, name)
        index = bisect.bisect_right(self._bases, base)
        for neighbour in self._regions[max(index - 1, 0) : index + 1]:
            if neighbour.base < region.end and base < neighbour.end:
                raise MmioOverlapError(
                    f"{region.description} at [{base:#x}, {region.end:#x}) overlaps "
                    f"{neighbour.description} at [{neighbour.base:#x}, {neighbour.end:#x})"
                )
        self._regions.insert(index, region)
        self._bases.insert(index, base)
        first_whole_page = -(-base >> PAGE_SHIFT)
        end_page = region.end >> PAGE_SHIFT
        if end_page - first_whole_page <= _MAX_CACHED_PAGES:
            for page in range(first_whole_page, end_page):
                self._by_page[page] = region
        return region

    def regions(self) -> list[MmioRegion]:
        """All regions, sorted by base address."""
        return list(self._regions)

    def page_table(self) -> Mapping[int, MmioRegion]:
        """Page number (address >> PAGE_SHIFT) -> region, for every page a region covers
        entirely (every device window is such a page), read-only: a backend's hot path may
        look a region up itself and call it directly, and fall back to `read`/`write`."""
        return MappingProxyType(self._by_page)

    def find(self, addr: int) -> MmioRegion | None:
        """The region containing `addr`, if any."""
        index = bisect.bisect_right(self._bases, addr) - 1
        if index >= 0:
            region = self._regions[index]
            if addr < region.end:
                return region
        return None

    def read(self, addr: int, size: int) -> int:
        """A guest read of `size` bytes at guest-physical `addr`."""
        region = self._by_page.get(addr >> PAGE_SHIFT)
        if region is not None:
            return region.read(addr - region.base, size)
        index = bisect.bisect_right(self._bases, addr) - 1
        if index >= 0:
            region = self._regions[index]
            if addr < region.end:
                return region.read(addr - region.base, size)
        self._unmapped("read", addr, size)
        return 0

    def write(self, addr: int, size: int, value: int) -> None:
        """A guest write of `size` bytes at guest-physical `addr`."""
        region = self._by_page.get(addr >> PAGE_SHIFT)
        if region is not None:
            region.write(addr - region.base, size, value)
            return
        index = bisect.bisect_right(self._bases, addr) - 1
        if index >= 0:
            region = self._regions[index]
            if addr < region.end:
                region.write(addr - region.base, size, value)
                return
        self._unmapped("write", addr, size)

    def _unmapped(self, kind: str, addr: int, size: int) -> None:
        self.unmapped_accesses += 1
        logged = self._unmapped_logged
        if addr not in logged and len(logged) < _MAX_LOGGED_UNMAPPED:
            logged.add(addr)
            log.warning(
                "guest %s of %d byte(s) at unmapped MMIO address %#x (reads as 0, writes ignored)",
                kind, size, addr,
            )

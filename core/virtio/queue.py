"""Split virtqueues (virtio 1.2 section 2.7), as the device side sees them.

The guest owns every byte of a queue, so nothing read from it is trusted: ring indices,
head and next indices, descriptor addresses and lengths, flags and chain lengths are all
checked against the queue size and guest memory. A violation raises `QueueError`; the
transport then puts the device into DEVICE_NEEDS_RESET (see `petard.core.virtio.mmio`).

`SplitQueue.pop()` returns a `DescriptorChain` (device-readable buffers first, then
device-writable ones, as the spec requires), `add_used()` returns it, and
`needs_interrupt()` decides, with VIRTIO_F_RING_EVENT_IDX or the NO_INTERRUPT flag, whether
the driver wants to be told. With EVENT_IDX the device also publishes `avail_event` so the
driver only notifies when new work arrives after what the device has already seen.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import NamedTuple

from petard.core.memory import GuestMemory
from petard.core.virtio import spec

__all__ = ["Descriptor", "DescriptorChain", "QueueError", "SplitQueue"]

_DESCRIPTOR = struct.Struct("<QIHH")
_USED_ELEMENT = struct.Struct("<II")
_INDEX_MASK = spec.RING_INDEX_MODULUS - 1


class QueueError(Exception):
    """The guest put something into a virtqueue that breaks the virtio rules."""


class Descriptor(NamedTuple):
    """One guest buffer `[address, address + length)`, already checked to lie in guest RAM.
    (A named tuple: a chain can have 256 of them, and tuples are the cheapest to build.)"""

    address: int
    length: int
    writable: bool


@dataclass(slots=True)
class DescriptorChain:
    """The buffers of one request: `readable` ones (driver to device) then `writable` ones."""

    head: int
    readable: list[Descriptor] = field(default_factory=list)
    writable: list[Descriptor] = field(default_factory=list)

    @property
    def readable_length(self) -> int:
        return sum(d.length for d in self.readable)

    @property
    def writable_length(self) -> int:
        return sum(d.length for d in self.writable)


def _is_power_of_two(value: int) -> bool:
    return value > 0 and value & (value - 1) == 0


class SplitQueue:
    """One split virtqueue: the driver-programmed layout plus the device's ring positions."""

    def __init__(self, memory: GuestMemory, max_size: int = spec.MAX_QUEUE_SIZE) -> None:
        if not 0 < max_size <= spec.MAX_QUEUE_SIZE or not _is_power_of_two(max_size):
            raise ValueError(f"queue max size {max_size} must be a power of two <= {spec.MAX_QUEUE_SIZE}")
        self.memory = memory
        self.max_size = max_size
        self.reset()

    def reset(self) -> None:
        """Back to the state after device reset (spec 4.2.3.1)."""
        self.size = self.max_size
        self.ready = False
        self.desc_table = 0
        self.avail_ring = 0
        self.used_ring = 0
        self.event_idx = False
        self.next_avail = 0
        self.next_used = 0
        self._signalled_used = 0

    # --- layout ----------------------------------------------------------------------------

    def _avail_ring_size(self) -> int:
        return spec.RING_HEADER_SIZE + spec.AVAIL_ENTRY_SIZE * self.size + spec.EVENT_FIELD_SIZE

    def _used_ring_size(self) -> int:
        return spec.RING_HEADER_SIZE + spec.USED_ENTRY_SIZE * self.size + spec.EVENT_FIELD_SIZE

    def problem(self) -> str | None:
        """Why this queue cannot be used as programmed, or None if it can (checked when the
        driver sets DRIVER_OK; afterwards the layout can no longer change)."""
        if not self.ready:
            return "queue is not ready"
        if not _is_power_of_two(self.size) or self.size > self.max_size:
            return f"queue size {self.size} is not a power of two <= {self.max_size}"
        checks = (
            ("descriptor table", self.desc_table, spec.DESCRIPTOR_SIZE * self.size, spec.DESC_TABLE_ALIGNMENT),
            ("available ring", self.avail_ring, self._avail_ring_size(), spec.AVAIL_RING_ALIGNMENT),
            ("used ring", self.used_ring, self._used_ring_size(), spec.USED_RING_ALIGNMENT),
        )
        for what, address, length, alignment in checks:
            if address % alignment:
                return f"{what} at {address:#x} is not {alignment}-byte aligned"
            if not self.memory.contains(address, length):
                return f"{what} [{address:#x}, +{length:#x}) is not in guest memory"
        return None

    # --- driver to device --------------------------------------------------------------------

    def _avail_idx(self) -> int:
        return self.memory.read_u16(self.avail_ring + 2)

    def pending(self) -> int:
        """How many chains the driver has made available that the device has not popped."""
        pending = (self._avail_idx() - self.next_avail) & _INDEX_MASK
        if pending > self.size:
            raise QueueError(
                f"available index moved {pending} entries ahead of the device's "
                f"{self.next_avail} in a queue of {self.size}"
            )
        return pending

    def pop(self) -> DescriptorChain | None:
        """The next available chain, checked; None when there is none."""
        if not self.pending():
            return None
        slot = self.next_avail % self.size
        head = self.memory.read_u16(self.avail_ring + spec.RING_HEADER_SIZE + spec.AVAIL_ENTRY_SIZE * slot)
        chain = self._walk(head)
        self.next_avail = (self.next_avail + 1) & _INDEX_MASK
        return chain

    def undo_pop(self) -> None:
        """Give the last popped chain back (e.g. when a rate limiter says "not now")."""
        self.next_avail = (self.next_avail - 1) & _INDEX_MASK

    def _walk(self, head: int) -> DescriptorChain:
        size = self.size
        if head >= size:
            raise QueueError(f"chain head {head} is outside a queue of {size}")
        memory = self.memory
        readable: list[Descriptor] = []
        writable: list[Descriptor] = []
        # One bounds-checked view of the whole table; `index < size` keeps each entry in it.
        with memory.view(self.desc_table, spec.DESCRIPTOR_SIZE * size) as table:
            index = head
            for _ in range(size):
                address, length, flags, next_index = _DESCRIPTOR.unpack_from(table, spec.DESCRIPTOR_SIZE * index)
                if flags & spec.DESC_F_INDIRECT:
                    raise QueueError(f"descriptor {index} is indirect, a feature the device does not offer")
                if not memory.contains(address, length):
                    raise QueueError(
                        f"descriptor {index} buffer [{address:#x}, +{length:#x}) is not in guest memory"
                    )
                if flags & spec.DESC_F_WRITE:
                    writable.append(Descriptor(address, length, True))
                elif writable:
                    raise QueueError(f"descriptor {index} is device-readable after a device-writable one")
                else:
                    readable.append(Descriptor(address, length, False))
                if not flags & spec.DESC_F_NEXT:
                    return DescriptorChain(head, readable, writable)
                if next_index >= size:
                    raise QueueError(f"descriptor {index} links to {next_index}, outside a queue of {size}")
                index = next_index
        raise QueueError(f"chain from head {head} is longer than the queue ({size}): a loop")

    # --- device to driver --------------------------------------------------------------------

    def add_used(self, head: int, written: int) -> None:
        """Return chain `head` to the driver, `written` bytes having been stored in it."""
        slot = self.next_used % self.size
        self.memory.write(
            self.used_ring + spec.RING_HEADER_SIZE + spec.USED_ENTRY_SIZE * slot,
            _USED_ELEMENT.pack(head, written),
        )
        self.next_used = (self.next_used + 1) & _INDEX_MASK
        self.memory.write_u16(self.used_ring + 2, self.next_used)

    def needs_interrupt(self) -> bool:
        """Whether the driver wants an interrupt for the used entries added since the last
        time this returned (spec 2.7.10: used_event with EVENT_IDX, else the avail flags)."""
        new, old = self.next_used, self._signalled_used
        if new == old:
            return False
        self._signalled_used = new
        if self.event_idx:
            used_event = self.memory.read_u16(
                self.avail_ring + spec.RING_HEADER_SIZE + spec.AVAIL_ENTRY_SIZE * self.size
            )
            return (new - used_event - 1) & _INDEX_MASK < (new - old) & _INDEX_MASK
        return not self.memory.read_u16(self.avail_ring) & spec.AVAIL_F_NO_INTERRUPT

    def publish_avail_event(self) -> None:
        """With EVENT_IDX: ask the driver to notify when it makes entry `next_avail` available."""
        if self.event_idx:
            self.memory.write_u16(
                self.used_ring + spec.RING_HEADER_SIZE + spec.USED_ENTRY_SIZE * self.size, self.next_avail
            )

    # --- snapshots ---------------------------------------------------------------------------

    def save_state(self) -> dict[str, int | bool]:
        return {
            "size": self.size, "ready": self.ready, "desc_table": self.desc_table,
            "avail_ring": self.avail_ring, "used_ring": self.used_ring, "event_idx": self.event_idx,
            "next_avail": self.next_avail, "next_used": self.next_used,
            "signalled_used": self._signalled_used,
        }

    def restore_state(self, state) -> None:
        for name in ("size", "ready", "desc_table", "avail_ring", "used_ring", "event_idx",
                     "next_avail", "next_used"):
            setattr(self, name, state[name])
        self._signalled_used = state["signalled_used"]

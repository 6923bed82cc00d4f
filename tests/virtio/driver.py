"""A minimal virtio-mmio *driver* for tests: it programs a device through a real MmioBus the
way Linux's virtio_mmio does, lays out split virtqueues in real GuestMemory and submits
descriptor chains, so the device models are exercised exactly as a guest would."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from petard.core.clock import VirtualClock
from petard.core.irq import IrqLine, RecordingInterruptSink
from petard.core.layout import DRAM_START, MiB, VIRTIO_MMIO_START
from petard.core.memory import GuestMemory
from petard.core.mmio import MmioBus
from petard.core.plugins import create_plugin_manager
from petard.core.virtio import spec

GSI = 5
QUEUE_AREA = DRAM_START + 0x1000  # queue structures, 64 KiB per queue
QUEUE_AREA_STRIDE = 0x10000
BUFFER_AREA = DRAM_START + 1 * MiB  # data buffers from here
MEMORY_SIZE = 4 * MiB


@dataclass
class Buffer:
    address: int
    length: int
    writable: bool = False


class DriverQueue:
    """The driver's side of one split virtqueue."""

    def __init__(self, memory: GuestMemory, index: int, size: int) -> None:
        self.memory = memory
        self.size = size
        base = QUEUE_AREA + index * QUEUE_AREA_STRIDE
        self.desc = base
        self.avail = base + 16 * size
        self.used = (self.avail + 6 + 2 * size + 3) & ~3
        self.avail_idx = 0
        self.last_used = 0
        self.next_free = 0

    def submit(self, buffers: list[Buffer]) -> int:
        """Write `buffers` as one chain into free descriptors, make it available; the head."""
        head = self.next_free
        for position, buffer in enumerate(buffers):
            index = (head + position) % self.size
            last = position == len(buffers) - 1
            flags = (0 if last else spec.DESC_F_NEXT) | (spec.DESC_F_WRITE if buffer.writable else 0)
            self.memory.write(self.desc + 16 * index, struct.pack(
                "<QIHH", buffer.address, buffer.length, flags, (index + 1) % self.size))
        self.next_free = (head + len(buffers)) % self.size
        self.publish(head)
        return head

    def publish(self, head: int) -> None:
        self.memory.write_u16(self.avail + 4 + 2 * (self.avail_idx % self.size), head)
        self.avail_idx = (self.avail_idx + 1) & 0xFFFF
        self.memory.write_u16(self.avail + 2, self.avail_idx)

    def set_used_event(self, value: int) -> None:
        self.memory.write_u16(self.avail + 4 + 2 * self.size, value)

    def avail_event(self) -> int:
        return self.memory.read_u16(self.used + 4 + 8 * self.size)

    def take_used(self) -> list[tuple[int, int]]:
        """New (head, written length) entries in the used ring."""
        used_idx = self.memory.read_u16(self.used + 2)
        entries = []
        while self.last_used != used_idx:
            slot = self.last_used % self.size
            entries.append(struct.unpack("<II", self.memory.read(self.used + 4 + 8 * slot, 8)))
            self.last_used = (self.last_used + 1) & 0xFFFF
        return entries


class VirtioTestBench:
    """A bus, memory, manual clock and interrupt sink with one virtio device on them."""

    def __init__(self, type_name: str, **options) -> None:
        self.memory = GuestMemory(DRAM_START, MEMORY_SIZE)
        self.clock = VirtualClock.manual()
        self.sink = RecordingInterruptSink()
        self.bus = MmioBus()
        self.base = VIRTIO_MMIO_START
        line = IrqLine(GSI)
        line.connect(self.sink)
        self.intid = line.intid
        plugins = create_plugin_manager(autoload=False)
        self.device = plugins.device_type(type_name).create(
            instance_name=type_name, irqs=[line], memory=self.memory, clock=self.clock, options=options)
        self.region = self.bus.add(self.base, self.device.mmio_size, self.device)
        self.device.start()
        self.queues: list[DriverQueue] = []
        self._next_buffer = BUFFER_AREA

    # --- registers -----------------------------------------------------------------------

    def read(self, offset: int, size: int = 4) -> int:
        return self.bus.read(self.base + offset, size)

    def write(self, offset: int, value: int, size: int = 4) -> None:
        self.bus.write(self.base + offset, size, value)

    def device_features(self) -> int:
        features = 0
        for page in (0, 1):
            self.write(spec.DEVICE_FEATURES_SEL, page)
            features |= self.read(spec.DEVICE_FEATURES) << (32 * page)
        return features

    def negotiate(self, accept: int | None = None) -> int:
        """Reset, ACKNOWLEDGE, DRIVER, features, FEATURES_OK; the accepted features."""
        self.write(spec.STATUS, 0)
        self.write(spec.STATUS, spec.STATUS_ACKNOWLEDGE)
        self.write(spec.STATUS, spec.STATUS_ACKNOWLEDGE | spec.STATUS_DRIVER)
        offered = self.device_features()
        accepted = offered if accept is None else accept
        for page in (0, 1):
            self.write(spec.DRIVER_FEATURES_SEL, page)
            self.write(spec.DRIVER_FEATURES, accepted >> (32 * page) & 0xFFFF_FFFF)
        self.write(spec.STATUS, spec.STATUS_ACKNOWLEDGE | spec.STATUS_DRIVER | spec.STATUS_FEATURES_OK)
        return accepted

    def setup_queues(self, size: int | None = None) -> None:
        self.queues = []
        index = 0
        while True:
            self.write(spec.QUEUE_SEL, index)
            maximum = self.read(spec.QUEUE_NUM_MAX)
            if maximum == 0:
                break
            queue = DriverQueue(self.memory, index, size or maximum)
            self.write(spec.QUEUE_NUM, queue.size)
            for low, address in ((spec.QUEUE_DESC_LOW, queue.desc), (spec.QUEUE_DRIVER_LOW, queue.avail),
                                 (spec.QUEUE_DEVICE_LOW, queue.used)):
                self.write(low, address & 0xFFFF_FFFF)
                self.write(low + 4, address >> 32)
            self.write(spec.QUEUE_READY, 1)
            self.queues.append(queue)
            index += 1

    def start(self, accept: int | None = None, queue_size: int | None = None) -> int:
        accepted = self.negotiate(accept)
        self.setup_queues(queue_size)
        self.write(spec.STATUS, spec.STATUS_ACKNOWLEDGE | spec.STATUS_DRIVER | spec.STATUS_FEATURES_OK
                   | spec.STATUS_DRIVER_OK)
        return accepted

    def notify(self, queue: int = 0) -> None:
        self.write(spec.QUEUE_NOTIFY, queue)

    def status(self) -> int:
        return self.read(spec.STATUS)

    def interrupts(self) -> int:
        return self.sink.rising_edges(self.intid)

    # --- buffers -------------------------------------------------------------------------

    def buffer(self, data: bytes | int, writable: bool = False) -> Buffer:
        """A buffer in guest memory holding `data` (or `data` zero bytes)."""
        length = data if isinstance(data, int) else len(data)
        address = self._next_buffer
        self._next_buffer += (length + 15) & ~15
        if self._next_buffer > DRAM_START + MEMORY_SIZE:
            raise MemoryError("test bench buffer area exhausted")
        if not isinstance(data, int):
            self.memory.write(address, data)
        else:
            self.memory.write(address, bytes(length))
        return Buffer(address, length, writable)

    def contents(self, buffer: Buffer) -> bytes:
        return self.memory.read(buffer.address, buffer.length)

    def close(self) -> None:
        self.device.stop()
        self.memory.close()

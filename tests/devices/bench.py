"""The device test bench: a real MmioBus, guest memory, a manual VM clock and a recording
interrupt sink, with built-in plugin devices placed on them (qtest-style, no guest)."""

from __future__ import annotations

from typing import Any

from petard.core.clock import VirtualClock
from petard.core.irq import IrqLine, RecordingInterruptSink
from petard.core.layout import DRAM_START
from petard.core.memory import GuestMemory
from petard.core.mmio import MmioBus
from petard.core.plugins import create_plugin_manager

# 2021-01-01T00:00:00Z: a wall-clock origin the RTC tests can reason about.
WALL_ORIGIN_NS = 1_609_459_200 * 1_000_000_000


class Bench:
    """A bus, memory, clock and interrupt sink, plus a way to put plugin devices on them."""

    def __init__(self) -> None:
        self.bus = MmioBus()
        self.memory = GuestMemory(DRAM_START, 1 << 20)
        self.clock = VirtualClock.manual(wall_origin_ns=WALL_ORIGIN_NS)
        self.sink = RecordingInterruptSink()
        self.plugins = create_plugin_manager(autoload=False)

    def place(self, type_name: str, base: int, gsis: tuple[int, ...] = (), name: str | None = None,
              **options: Any):
        irqs = [IrqLine(gsi) for gsi in gsis]
        for line in irqs:
            line.connect(self.sink)
        device = self.plugins.device_type(type_name).create(
            instance_name=name or type_name, irqs=irqs, memory=self.memory, clock=self.clock,
            options=options,
        )
        self.bus.add(base, device.mmio_size, device)
        device.start()
        return device

    def close(self) -> None:
        self.memory.close()

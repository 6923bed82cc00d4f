"""A device on a bench: a real MMIO bus, guest memory, a manual clock and an IRQ recorder.

The register-level half of petard's test kit (qtest-style: no guest, no CPU)::

    bench = DeviceBench()
    gpio = bench.attach(Pl061, options={"initial_inputs": 0})   # a Device subclass or a type name
    base = bench.base_of(gpio)
    bench.writel(base + 0x400, 0xFF)                              # guest-style accesses
    assert bench.readl(base + 0x3FC) == 0
    bench.step(1_000_000)                                        # run timers due within 1 ms
    assert bench.irq(gpio).level and bench.irq(gpio).rising_edges == 1

Unlike a running VM, the bench does not contain device failures: an exception raised by
`mmio_read`/`mmio_write` (or a read answering a wrong type) is re-raised from the access as
`DeviceFailure`, so a test sees the real traceback.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from petard.core import layout
from petard.core.clock import VirtualClock
from petard.core.device import Device, DeviceType
from petard.core.irq import IrqLine, RecordingInterruptSink
from petard.core.memory import GuestMemory
from petard.core.mmio import MmioBus, MmioRegion

__all__ = ["AttachedDevice", "DeviceBench", "DeviceFailure", "IrqProbe"]

BENCH_MEMORY_SIZE = 1 << 20
# 2021-01-01T00:00:00Z: a fixed wall-clock origin, so RTC-like devices are reproducible.
BENCH_WALL_ORIGIN_NS = 1_609_459_200 * 1_000_000_000
BENCH_PLUGIN = "bench"


class DeviceFailure(AssertionError):
    """A device raised (or answered a wrong type) during a bench access."""


@dataclass(frozen=True)
class IrqProbe:
    """What one interrupt line has done, as seen by the bench's recording sink."""

    line: IrqLine
    sink: RecordingInterruptSink

    @property
    def level(self) -> bool:
        return self.sink.levels.get(self.line.intid, False)

    @property
    def rising_edges(self) -> int:
        return self.sink.rising_edges(self.line.intid)

    @property
    def history(self) -> list[bool]:
        """Every level driven on this line, in order."""
        return [level for intid, level in self.sink.events if intid == self.line.intid]


@dataclass(frozen=True)
class AttachedDevice:
    """Where the bench put a device."""

    device: Device
    base: int
    irqs: tuple[IrqLine, ...]
    region: MmioRegion


class DeviceBench:
    """A bus, memory, manual clock and interrupt recorder to put devices on."""

    def __init__(self, *, memory_size: int = BENCH_MEMORY_SIZE, plugin_manager: Any = None) -> None:
        self.bus = MmioBus()
        self.memory = GuestMemory(layout.DRAM_START, memory_size)
        self.clock = VirtualClock.manual(wall_origin_ns=BENCH_WALL_ORIGIN_NS)
        self.sink = RecordingInterruptSink()
        self._plugin_manager = plugin_manager
        self._attached: dict[int, AttachedDevice] = {}
        self._next_slot = 0
        self._next_gsi = 0

    @property
    def plugin_manager(self):
        if self._plugin_manager is None:
            from petard.core.plugins import create_plugin_manager

            self._plugin_manager = create_plugin_manager()
        return self._plugin_manager

    # --- placing devices --------------------------------------------------------------

    def attach(self, device_type: str | type[Device], *, base: int | None = None,
               gsis: Sequence[int] | None = None, name: str | None = None,
               options: Mapping[str, Any] | None = None, from_config: bool = True,
               start: bool = True) -> Device:
        """Build a device and put it on the bus; return it (`base_of` says where it sits;
        default: the next virtio-mmio slot and the next GSIs). `device_type` is a `Device` subclass or a type name some installed
        plugin provides. `options` are user configuration (validated by the type's
        `options_model`) unless `from_config=False`, then constructor keyword arguments."""
        resolved = self._resolve(device_type)
        if base is None:
            base = layout.virtio_mmio_address(self._next_slot)
            self._next_slot += 1
        if gsis is None:
            gsis = range(self._next_gsi, self._next_gsi + resolved.cls.irq_count)
            self._next_gsi += resolved.cls.irq_count
        irqs = tuple(IrqLine(gsi) for gsi in gsis)
        for line in irqs:
            line.connect(self.sink)
        device = resolved.create(instance_name=name or resolved.name, irqs=irqs, memory=self.memory,
                                 clock=self.clock, options=options, from_config=from_config)
        region = self.bus.add(base, device.mmio_size, device)
        self._attached[id(device)] = AttachedDevice(device, base, irqs, region)
        if start:
            device.start()
        return device

    def _resolve(self, device_type: str | type[Device]) -> DeviceType:
        if isinstance(device_type, str):
            return self.plugin_manager.device_type(device_type)
        if not (isinstance(device_type, type) and issubclass(device_type, Device)):
            raise TypeError(f"{device_type!r} is neither a device type name nor a Device subclass")
        return DeviceType(device_type.__name__, device_type, BENCH_PLUGIN)

    def placement(self, device: Device) -> AttachedDevice:
        return self._attached[id(device)]

    def base_of(self, device: Device) -> int:
        return self.placement(device).base

    def irq(self, device: Device, index: int = 0) -> IrqProbe:
        """The recorder's view of interrupt line `index` of `device`."""
        return IrqProbe(self.placement(device).irqs[index], self.sink)

    # --- guest-style accesses ---------------------------------------------------------

    def read(self, address: int, size: int) -> int:
        region = self._region(address)
        value = self.bus.read(address, size)
        self._check(region)
        return value

    def write(self, address: int, size: int, value: int) -> None:
        region = self._region(address)
        self.bus.write(address, size, value)
        self._check(region)

    def readb(self, address: int) -> int:
        return self.read(address, 1)

    def readw(self, address: int) -> int:
        return self.read(address, 2)

    def readl(self, address: int) -> int:
        return self.read(address, 4)

    def readq(self, address: int) -> int:
        return self.read(address, 8)

    def writeb(self, address: int, value: int) -> None:
        self.write(address, 1, value)

    def writew(self, address: int, value: int) -> None:
        self.write(address, 2, value)

    def writel(self, address: int, value: int) -> None:
        self.write(address, 4, value)

    def writeq(self, address: int, value: int) -> None:
        self.write(address, 8, value)

    def _region(self, address: int) -> MmioRegion | None:
        return self.bus.find(address)

    @staticmethod
    def _check(region: MmioRegion | None) -> None:
        if region is not None and region.failed:
            failure = region.failure
            region.failed, region.failure = False, None  # let the test go on probing
            raise DeviceFailure(f"{region.description} failed: {type(failure).__name__}: {failure}") from failure

    # --- time -------------------------------------------------------------------------

    def step(self, delay_ns: int) -> int:
        """Advance the clock by `delay_ns`, running due timers; return how many ran."""
        return self.clock.advance(delay_ns)

    def run_posted(self) -> int:
        """Run work posted with `call_soon_threadsafe` (what the VM loop does at safe points)."""
        return self.clock.run_due()

    def close(self) -> None:
        for attached in self._attached.values():
            attached.device.stop()
        self._attached.clear()
        self.memory.close()

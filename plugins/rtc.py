"""The real-time clock: an ARM PrimeCell PL031, as Firecracker exposes at RTC_START.

The data register counts host wall-clock seconds (from the VM clock's `wall_ns()`), shifted
by whatever the guest loads into LR. Registers are 32 bits wide and only 4-byte accesses are
answered. The PrimeCell identification registers let Linux's AMBA bus match the "arm,pl031"
driver.

The match (alarm) interrupt is modelled and drives the device's IRQ line as a level
(RIS & IMSC), but, as upstream, the device-tree node carries no `interrupts` property, so
Linux does not use it; the line is allocated so that GSI numbering matches Firecracker's.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from petard.devices import Device, DeviceContext, FdtNode, IrqLine, apb_clock_properties, hookimpl, mmio_reg

TYPE_NAME = "rtc"

ACCESS_SIZE = 4

# Register offsets.
DR = 0x000  # data: the current count (read-only)
MR = 0x004  # match
LR = 0x008  # load: writing sets the count
CR = 0x00C  # control: bit 0 "started"; permanently set here
IMSC = 0x010  # interrupt mask set/clear
RIS = 0x014  # raw interrupt status (read-only)
MIS = 0x018  # masked interrupt status (read-only)
ICR = 0x01C  # interrupt clear (write-only)

CR_START = 0x1
INTERRUPT_BIT = 0x1

# PrimeCell identification: PeriphID0-3 at 0xFE0-0xFEC, PCellID0-3 at 0xFF0-0xFFC, one
# byte of the 32-bit ID per register.
PERIPH_ID = 0x00041031
PRIMECELL_ID = 0xB105F00D
PERIPH_ID_BASE = 0xFE0
PRIMECELL_ID_BASE = 0xFF0
ID_REGISTERS = {
    **{PERIPH_ID_BASE + 4 * i: (PERIPH_ID >> (8 * i)) & 0xFF for i in range(4)},
    **{PRIMECELL_ID_BASE + 4 * i: (PRIMECELL_ID >> (8 * i)) & 0xFF for i in range(4)},
}

COUNTER_MASK = 0xFFFF_FFFF
NS_PER_SECOND = 1_000_000_000


class Pl031(Device):
    """PL031 RTC counting host wall-clock seconds."""

    irq_count = 1
    compatible = ("arm,pl031", "arm,primecell")

    def __init__(self, ctx: DeviceContext) -> None:
        super().__init__(ctx)
        self._irq = ctx.irqs[0]
        self._offset = 0  # seconds added to host time (set through LR)
        self._load = 0
        self._match = 0
        self._mask = 0
        self._raw_status = 0
        self._alarm = None

    def _host_seconds(self) -> int:
        return self.ctx.clock.wall_ns() // NS_PER_SECOND

    def count(self) -> int:
        """The value DR reads now."""
        return (self._host_seconds() + self._offset) & COUNTER_MASK

    # --- alarm ----------------------------------------------------------------------------

    def _update_irq(self) -> None:
        self._irq.set_level(bool(self._raw_status & self._mask))

    def _schedule_alarm(self) -> None:
        if self._alarm is not None:
            self._alarm.cancel()
            self._alarm = None
        seconds_to_match = (self._match - self.count()) & COUNTER_MASK
        if seconds_to_match == 0:
            self._on_match()
            return
        clock = self.ctx.clock
        wall_ns = clock.wall_ns()
        next_tick_ns = (wall_ns // NS_PER_SECOND + seconds_to_match) * NS_PER_SECOND
        self._alarm = clock.call_later(next_tick_ns - wall_ns, self._on_match)

    def _on_match(self) -> None:
        self._alarm = None
        self._raw_status = INTERRUPT_BIT
        self._update_irq()

    # --- register access ------------------------------------------------------------------

    def mmio_read(self, offset: int, size: int) -> int:
        if size != ACCESS_SIZE:
            self.unhandled_access("read", offset, size)
            return 0
        if offset == DR:
            return self.count()
        if offset == MR:
            return self._match
        if offset == LR:
            return self._load
        if offset == CR:
            return CR_START
        if offset == IMSC:
            return self._mask
        if offset == RIS:
            return self._raw_status
        if offset == MIS:
            return self._raw_status & self._mask
        identification = ID_REGISTERS.get(offset)
        if identification is not None:
            return identification
        self.unhandled_access("read", offset, size)
        return 0

    def mmio_write(self, offset: int, size: int, value: int) -> None:
        if size != ACCESS_SIZE:
            self.unhandled_access("write", offset, size, value)
            return
        value &= COUNTER_MASK
        if offset == MR:
            self._match = value
            self._schedule_alarm()
        elif offset == LR:
            self._load = value
            self._offset = value - self._host_seconds()
            self._schedule_alarm()
        elif offset == CR:
            pass  # the counter always runs; writes have no effect, as once started on the part
        elif offset == IMSC:
            self._mask = value & INTERRUPT_BIT
            self._update_irq()
        elif offset == ICR:
            self._raw_status &= ~value & INTERRUPT_BIT
            self._update_irq()
        else:
            self.unhandled_access("write", offset, size, value)

    # --- device API -----------------------------------------------------------------------

    def fdt_nodes(self, base: int, irqs: Sequence[IrqLine]) -> list[FdtNode]:
        return [
            FdtNode(
                f"rtc@{base:x}",
                {
                    "compatible": list(self.compatible),
                    "reg": mmio_reg(base, self.mmio_size),
                    **apb_clock_properties(),
                },
            )
        ]

    def stop(self) -> None:
        if self._alarm is not None:
            self._alarm.cancel()
            self._alarm = None

    def save_state(self) -> dict[str, Any]:
        return {
            "offset": self._offset,
            "load": self._load,
            "match": self._match,
            "mask": self._mask,
            "raw_status": self._raw_status,
        }

    def restore_state(self, state: Mapping[str, Any]) -> None:
        self._offset = state["offset"]
        self._load = state["load"]
        self._match = state["match"]
        self._mask = state["mask"]
        self._raw_status = state["raw_status"]
        if self._alarm is not None:
            self._alarm.cancel()
            self._alarm = None
        if not self._raw_status:
            self._schedule_alarm()
        self._update_irq()


@hookimpl
def petard_device_types() -> dict[str, type[Device]]:
    return {TYPE_NAME: Pl031}

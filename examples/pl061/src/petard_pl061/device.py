"""The PL061 GPIO controller model: eight pins, guest-programmable direction and interrupts,
and a host side that reads the pins and drives the inputs.

What a pin shows (`level`): the output latch when the guest made it an output (GPIODIR bit
set), else the level the host drives on it (`drive`). Interrupts are detected on what the
pins show, per pin: edge-sensitive (GPIOIS 0) on the rising or falling edge chosen by GPIOIEV,
or on both with GPIOIBE; level-sensitive (GPIOIS 1) while the pin is at the GPIOIEV level.
The controller's single interrupt output is the OR of GPIOMIS (= GPIORIS & GPIOIE) and is a
level, so the device tree gives Linux a level-high SPI.

Host side (call it on the VM's thread, e.g. through ``GuestVm.call``): `drive(pin, level)`,
`level(pin)`, `levels`, and `add_listener(fn)` to hear ``fn(pin, level)`` whenever a pin
changes level.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

from pydantic import BaseModel, ConfigDict, Field, field_validator

from petard.devices import (EMPTY, Cells, Device, DeviceContext, FdtNode, IrqLine, apb_clock_properties,
                            gic_parent_property, mmio_reg, spi_interrupt)

from petard_pl061 import registers as reg
from petard_pl061.registers import PIN_COUNT, PIN_MASK

# The gpio and interrupt specifiers Linux's binding uses: <pin flags>.
GPIO_CELLS = 2
INTERRUPT_CELLS = 2

Listener = Callable[[int, bool], None]


class Pl061Options(BaseModel):
    """What a user may configure (``"options"`` of ``PUT /petard/devices/{id}``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Levels the host drives on the pins at power-on, bit n = pin n.
    initial_inputs: int = Field(0, ge=0, le=PIN_MASK)
    #: Names the guest sees for the pins (device-tree ``gpio-line-names``), one per pin.
    line_names: list[str] | None = None

    @field_validator("line_names")
    @classmethod
    def _one_name_per_pin(cls, names: list[str] | None) -> list[str] | None:
        if names is not None and len(names) != PIN_COUNT:
            raise ValueError(f"needs exactly {PIN_COUNT} names (one per pin), got {len(names)}")
        return names


def _bit(pin: int) -> int:
    if not 0 <= pin < PIN_COUNT:
        raise ValueError(f"pin {pin} does not exist (0-{PIN_COUNT - 1})")
    return 1 << pin


class Pl061(Device):
    """ARM PrimeCell PL061 with host-visible pins."""

    irq_count = 1
    compatible = ("arm,pl061", "arm,primecell")
    options_model = Pl061Options

    def __init__(self, ctx: DeviceContext, *, initial_inputs: int = 0, line_names: list[str] | None = None) -> None:
        super().__init__(ctx)
        self._irq = ctx.irqs[0]
        self._line_names = line_names
        self._listeners: list[Listener] = []
        self._inputs = initial_inputs & PIN_MASK  # what the host drives
        self._data = 0  # output latch
        self._dir = 0
        self._sense = 0  # GPIOIS
        self._both_edges = 0  # GPIOIBE
        self._event = 0  # GPIOIEV
        self._enabled = 0  # GPIOIE
        self._raw_status = 0  # GPIORIS
        self._afsel = 0
        self._levels = self._pin_levels()

    # --- host side --------------------------------------------------------------------

    @property
    def levels(self) -> int:
        """What all pins show now, bit n = pin n."""
        return self._levels

    def level(self, pin: int) -> bool:
        return bool(self._levels & _bit(pin))

    def drive(self, pin: int, level: bool) -> None:
        """Drive `level` onto `pin` from outside (a button, a sensor). Seen by the guest
        while the pin is an input; remembered while it is an output."""
        bit = _bit(pin)
        self._inputs = self._inputs | bit if level else self._inputs & ~bit
        self._update_pins()

    def add_listener(self, listener: Listener) -> None:
        """Call `listener(pin, level)` whenever a pin changes level (also the guest's outputs)."""
        self._listeners.append(listener)

    # --- pins and interrupts ----------------------------------------------------------

    def _pin_levels(self) -> int:
        return (self._data & self._dir) | (self._inputs & ~self._dir & PIN_MASK)

    def _update_pins(self) -> None:
        old, new = self._levels, self._pin_levels()
        self._levels = new
        changed = old ^ new
        if changed:
            edge_pins = changed & ~self._sense
            rising = edge_pins & new & (self._event | self._both_edges)
            falling = edge_pins & old & (~self._event | self._both_edges)
            self._raw_status |= (rising | falling) & PIN_MASK
        self._update_interrupt()
        for pin in range(PIN_COUNT):
            if changed >> pin & 1:
                for listener in list(self._listeners):
                    listener(pin, bool(new >> pin & 1))

    def _update_interrupt(self) -> None:
        level_pins = self._sense
        at_event_level = ~(self._levels ^ self._event) & PIN_MASK
        self._raw_status = (self._raw_status & ~level_pins) | (level_pins & at_event_level)
        self._irq.set_level(bool(self._raw_status & self._enabled))

    # --- register access --------------------------------------------------------------

    def mmio_read(self, offset: int, size: int) -> int:
        if size not in reg.ACCESS_SIZES:
            self.unhandled_access("read", offset, size)
            return 0
        if offset <= reg.DATA_END:
            return self._levels & (offset >> reg.DATA_MASK_SHIFT) & PIN_MASK
        registers = {
            reg.DIR: self._dir,
            reg.IS: self._sense,
            reg.IBE: self._both_edges,
            reg.IEV: self._event,
            reg.IE: self._enabled,
            reg.RIS: self._raw_status,
            reg.MIS: self._raw_status & self._enabled,
            reg.AFSEL: self._afsel,
        }
        value = registers.get(offset)
        if value is None:
            value = reg.ID_REGISTERS.get(offset)
        if value is None:
            self.unhandled_access("read", offset, size)
            return 0
        return value

    def mmio_write(self, offset: int, size: int, value: int) -> None:
        if size not in reg.ACCESS_SIZES:
            self.unhandled_access("write", offset, size, value)
            return
        value &= PIN_MASK
        if offset <= reg.DATA_END:
            mask = (offset >> reg.DATA_MASK_SHIFT) & PIN_MASK
            self._data = (self._data & ~mask) | (value & mask)
            self._update_pins()
        elif offset == reg.DIR:
            self._dir = value
            self._update_pins()
        elif offset == reg.IS:
            self._sense = value
            self._update_interrupt()
        elif offset == reg.IBE:
            self._both_edges = value
        elif offset == reg.IEV:
            self._event = value
            self._update_interrupt()
        elif offset == reg.IE:
            self._enabled = value
            self._update_interrupt()
        elif offset == reg.IC:
            self._raw_status &= ~(value & ~self._sense)  # level-sensitive bits stay while asserted
            self._update_interrupt()
        elif offset == reg.AFSEL:
            self._afsel = value
        else:
            self.unhandled_access("write", offset, size, value)

    # --- device API -------------------------------------------------------------------

    def fdt_nodes(self, base: int, irqs: Sequence[IrqLine]) -> list[FdtNode]:
        properties: dict[str, Any] = {
            "compatible": list(self.compatible),
            "reg": mmio_reg(base, self.mmio_size),
            "interrupts": spi_interrupt(irqs[0].gsi, edge=False),
            **gic_parent_property(),
            "gpio-controller": EMPTY,
            "#gpio-cells": Cells(GPIO_CELLS),
            "interrupt-controller": EMPTY,
            "#interrupt-cells": Cells(INTERRUPT_CELLS),
            **apb_clock_properties(),
        }
        if self._line_names is not None:
            properties["gpio-line-names"] = list(self._line_names)
        return [FdtNode(f"gpio@{base:x}", properties)]

    _STATE_FIELDS = ("_inputs", "_data", "_dir", "_sense", "_both_edges", "_event", "_enabled",
                     "_raw_status", "_afsel")

    def save_state(self) -> dict[str, Any]:
        return {name.lstrip("_"): getattr(self, name) for name in self._STATE_FIELDS}

    def restore_state(self, state: Mapping[str, Any]) -> None:
        for name in self._STATE_FIELDS:
            setattr(self, name, state[name.lstrip("_")])
        self._levels = self._pin_levels()
        self._update_interrupt()

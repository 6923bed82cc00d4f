"""Interrupt lines from devices to the interrupt controller.

A device drives `IrqLine`s; the backend implements `InterruptSink` (the emulated GIC on
Unicorn, `KVM_IRQ_LINE` on KVM). Lines carry a GSI, the number the FDT's SPI cell uses;
the controller sees INTID = GSI + 32 (`layout.gsi_to_intid`).

Lines exist before the backend does (devices are created, and may raise lines while being
restored, before the VM is): until `connect()` a line only remembers its level, and an
edge pulsed while unconnected; `connect()` replays them.
"""

from __future__ import annotations

from typing import Protocol

from petard.core.layout import gsi_to_intid

__all__ = ["InterruptSink", "IrqLine", "RecordingInterruptSink"]


class InterruptSink(Protocol):
    """What a backend's interrupt controller offers devices."""

    def set_irq_level(self, intid: int, level: bool) -> None:
        """Drive the input of interrupt `intid` high (True) or low (False)."""


class IrqLine:
    """One device interrupt output wired to one controller input."""

    __slots__ = ("gsi", "intid", "_level", "_set_level", "_edge_while_unconnected")

    def __init__(self, gsi: int) -> None:
        self.gsi = gsi
        self.intid = gsi_to_intid(gsi)
        self._level = False
        self._set_level = None
        self._edge_while_unconnected = False

    def __repr__(self) -> str:
        state = "connected" if self._set_level is not None else "unconnected"
        return f"IrqLine(gsi={self.gsi}, intid={self.intid}, level={self._level}, {state})"

    @property
    def level(self) -> bool:
        return self._level

    @property
    def connected(self) -> bool:
        return self._set_level is not None

    def connect(self, sink: InterruptSink) -> None:
        """Wire the line to `sink` and replay what happened before."""
        self._set_level = sink.set_irq_level
        if self._edge_while_unconnected and not self._level:
            self._set_level(self.intid, True)
            self._set_level(self.intid, False)
        elif self._level:
            self._set_level(self.intid, True)
        self._edge_while_unconnected = False

    def disconnect(self) -> None:
        self._set_level = None

    def raise_(self) -> None:
        """Drive the line high (level-triggered use). Raising a high line does nothing."""
        if not self._level:
            self._level = True
            if self._set_level is not None:
                self._set_level(self.intid, True)

    def lower(self) -> None:
        """Drive the line low. Lowering a low line does nothing."""
        if self._level:
            self._level = False
            if self._set_level is not None:
                self._set_level(self.intid, False)

    def set_level(self, level: bool) -> None:
        if level:
            self.raise_()
        else:
            self.lower()

    def pulse(self) -> None:
        """Signal one edge (edge-triggered use): high then low, always delivered."""
        set_level = self._set_level
        if set_level is None:
            self._edge_while_unconnected = True
            return
        set_level(self.intid, True)
        if not self._level:
            set_level(self.intid, False)


class RecordingInterruptSink:
    """An `InterruptSink` that records every level change; for tests and tracing.

    `events` holds `(intid, level)` in order; `levels` the current level per INTID;
    `rising_edges(intid)` counts low-to-high transitions seen on that input.
    """

    def __init__(self) -> None:
        self.events: list[tuple[int, bool]] = []
        self.levels: dict[int, bool] = {}

    def set_irq_level(self, intid: int, level: bool) -> None:
        self.events.append((intid, level))
        self.levels[intid] = level

    def rising_edges(self, intid: int) -> int:
        count, previous = 0, False
        for event_intid, level in self.events:
            if event_intid == intid:
                if level and not previous:
                    count += 1
                previous = level
        return count

    def clear(self) -> None:
        self.events.clear()

"""The console UART: a 16550A (8250 family) with byte-wide registers, as Firecracker exposes.

Guest output goes to a binary sink (stdout by default, or a file path); guest input is fed
with `feed(bytes)`, by the VMM or, given the `input` option (stdin when it is a tty or FIFO),
by a reader thread that posts through the VM clock. The interrupt is edge-triggered (the FDT says "edge rising"):
the device pulses its line whenever its interrupt output goes from inactive to active, which
is what Linux's 8250 driver needs because it reads IIR until "no interrupt" in its handler.

Transmit-holding-register-empty (THRE) behaves like the real part, which Linux probes at
start-up (it enables the THRE interrupt and expects IIR to report it, else it falls back to
polling): THRE becomes pending when the guest enables the interrupt while the transmitter
is empty, and again after every byte written (transmission is instantaneous); reading IIR
while THRE is the reported source, or writing THR, clears it.
"""

from __future__ import annotations

import os
import sys
from typing import Any, BinaryIO, Mapping, Sequence

from petard.devices import (Device, DeviceContext, FdtNode, IrqLine, apb_clock_properties, hookimpl, mmio_reg,
                            spi_interrupt)
from petard.plugins.host_input import InputPump

TYPE_NAME = "serial"

# Register offsets (1-byte registers; DLAB=1 turns offsets 0 and 1 into the divisor latch).
RBR_THR = 0  # receive buffer (read) / transmit holding (write); DLL when DLAB=1
IER = 1  # interrupt enable; DLM when DLAB=1
IIR_FCR = 2  # interrupt identification (read) / FIFO control (write)
LCR = 3  # line control
MCR = 4  # modem control
LSR = 5  # line status
MSR = 6  # modem status
SCR = 7  # scratch
REGISTER_COUNT = 8

IER_RX_DATA = 0x01  # ERBFI
IER_THR_EMPTY = 0x02  # ETBEI
IER_LINE_STATUS = 0x04  # ELSI
IER_MODEM_STATUS = 0x08  # EDSSI
IER_MASK = 0x0F

IIR_NO_INTERRUPT = 0x01
IIR_MODEM_STATUS = 0x00
IIR_THR_EMPTY = 0x02
IIR_RX_DATA = 0x04
IIR_LINE_STATUS = 0x06
IIR_FIFOS_ENABLED = 0xC0

FCR_ENABLE_FIFO = 0x01
FCR_CLEAR_RX = 0x02

LCR_DLAB = 0x80
LCR_8N1 = 0x03

MCR_DTR = 0x01
MCR_RTS = 0x02
MCR_OUT1 = 0x04
MCR_OUT2 = 0x08
MCR_LOOPBACK = 0x10
MCR_MASK = 0x1F

LSR_DATA_READY = 0x01
LSR_OVERRUN = 0x02
LSR_THR_EMPTY = 0x20
LSR_TRANSMITTER_EMPTY = 0x40

MSR_DELTA_CTS = 0x01
MSR_DELTA_DSR = 0x02
MSR_TRAILING_EDGE_RI = 0x04
MSR_DELTA_DCD = 0x08
MSR_CTS = 0x10
MSR_DSR = 0x20
MSR_RI = 0x40
MSR_DCD = 0x80
# With no modem attached the lines read as carrier present and ready (as vm-superio does).
MSR_INPUTS_DEFAULT = MSR_DCD | MSR_DSR | MSR_CTS

DEFAULT_DIVISOR = 12  # 9600 baud from the 1.8432 MHz reference

# The 16550A has a 16-byte receive FIFO; Firecracker's model buffers 64 bytes. Only
# loopback can overrun it: host input waits in `feed`'s backlog instead.
RX_FIFO_CAPACITY = 64

# Guest output is buffered and written out at a newline, when this much has accumulated,
# or this long (VM clock) after the first unwritten byte.
OUTPUT_BUFFER_LIMIT = 4096
OUTPUT_FLUSH_DELAY_NS = 1_000_000


def _msr_inputs_from_loopback(mcr: int) -> int:
    """In loopback the modem inputs are wired to the modem-control outputs."""
    inputs = 0
    if mcr & MCR_RTS:
        inputs |= MSR_CTS
    if mcr & MCR_DTR:
        inputs |= MSR_DSR
    if mcr & MCR_OUT1:
        inputs |= MSR_RI
    if mcr & MCR_OUT2:
        inputs |= MSR_DCD
    return inputs


class Serial16550A(Device):
    """16550A UART. Options: `output` — None for stdout, a path, or a binary file object;
    `input` — a file descriptor or file object to read guest input from (None: only `feed`)."""

    irq_count = 1
    compatible = ("ns16550a",)

    def __init__(self, ctx: DeviceContext, *, output: BinaryIO | str | os.PathLike | None = None,
                 input: int | BinaryIO | None = None) -> None:
        super().__init__(ctx)
        self._irq = ctx.irqs[0]
        self._input_pump = None
        if input is not None:
            fd = input if isinstance(input, int) else input.fileno()
            self._input_pump = InputPump(fd, self.feed, ctx.clock, ctx.name)
        if output is None:
            self._sink: BinaryIO = sys.stdout.buffer
            self._owns_sink = False
        elif isinstance(output, (str, os.PathLike)):
            self._sink = open(output, "ab")
            self._owns_sink = True
        else:
            self._sink = output
            self._owns_sink = False
        self._out = bytearray()
        self._flush_timer = None
        self._write_errors = 0
        self.bytes_written = 0
        self._rx = bytearray()
        self._ier = 0
        self._lcr = LCR_8N1
        self._mcr = 0
        self._scr = 0
        self._dll = DEFAULT_DIVISOR
        self._dlm = 0
        self._fifo_enabled = False
        self._thr_empty_pending = False
        self._line_errors = 0  # LSR error bits, cleared by reading LSR
        self._msr_inputs = MSR_INPUTS_DEFAULT
        self._msr_deltas = 0
        self._irq_active = False

    # --- interrupt output ---------------------------------------------------------------

    def _interrupt_id(self) -> int:
        """The highest-priority pending and enabled interrupt source, as IIR bits 0-3."""
        ier = self._ier
        if ier & IER_LINE_STATUS and self._line_errors:
            return IIR_LINE_STATUS
        if ier & IER_RX_DATA and self._rx:
            return IIR_RX_DATA
        if ier & IER_THR_EMPTY and self._thr_empty_pending:
            return IIR_THR_EMPTY
        if ier & IER_MODEM_STATUS and self._msr_deltas:
            return IIR_MODEM_STATUS
        return IIR_NO_INTERRUPT

    @property
    def interrupt_active(self) -> bool:
        """Whether the UART's interrupt output is asserted (some enabled source pending)."""
        return self._irq_active

    def _update_interrupt(self) -> None:
        active = self._interrupt_id() != IIR_NO_INTERRUPT
        if active and not self._irq_active:
            self._irq.pulse()
        self._irq_active = active

    # --- register access ----------------------------------------------------------------

    def mmio_read(self, offset: int, size: int) -> int:
        if size != 1 or offset >= REGISTER_COUNT:
            self.unhandled_access("read", offset, size)
            return 0
        if offset == LSR:
            value = LSR_THR_EMPTY | LSR_TRANSMITTER_EMPTY | self._line_errors
            if self._rx:
                value |= LSR_DATA_READY
            if self._line_errors:
                self._line_errors = 0
                self._update_interrupt()
            return value
        if offset == RBR_THR:
            if self._lcr & LCR_DLAB:
                return self._dll
            rx = self._rx
            if not rx:
                return 0
            byte = rx[0]
            del rx[0]
            self._update_interrupt()
            return byte
        if offset == IIR_FCR:
            interrupt_id = self._interrupt_id()
            if interrupt_id == IIR_THR_EMPTY:
                self._thr_empty_pending = False
                self._update_interrupt()
            return interrupt_id | (IIR_FIFOS_ENABLED if self._fifo_enabled else 0)
        if offset == IER:
            return self._dlm if self._lcr & LCR_DLAB else self._ier
        if offset == LCR:
            return self._lcr
        if offset == MCR:
            return self._mcr
        if offset == MSR:
            value = self._msr_inputs | self._msr_deltas
            if self._msr_deltas:
                self._msr_deltas = 0
                self._update_interrupt()
            return value
        return self._scr  # SCR

    def mmio_write(self, offset: int, size: int, value: int) -> None:
        if size != 1 or offset >= REGISTER_COUNT:
            self.unhandled_access("write", offset, size, value)
            return
        value &= 0xFF
        if offset == RBR_THR:
            if self._lcr & LCR_DLAB:
                self._dll = value
                return
            if self._mcr & MCR_LOOPBACK:
                self._receive_looped_back(value)
                self._thr_empty_pending = True
                self._update_interrupt()
                return
            # The hot path of guest console output: kept free of calls where possible.
            out = self._out
            out.append(value)
            if value == 0x0A or len(out) >= OUTPUT_BUFFER_LIMIT:
                self.flush()
            elif self._flush_timer is None:
                self._flush_timer = self.ctx.clock.call_later(OUTPUT_FLUSH_DELAY_NS, self._flush_on_timer)
            if not self._thr_empty_pending:  # already pending: the interrupt state is unchanged
                self._thr_empty_pending = True
                self._update_interrupt()
        elif offset == IER:
            if self._lcr & LCR_DLAB:
                self._dlm = value
                return
            enabling_thr_empty = value & IER_THR_EMPTY and not self._ier & IER_THR_EMPTY
            self._ier = value & IER_MASK
            if enabling_thr_empty:
                self._thr_empty_pending = True  # the transmitter is always empty
            self._update_interrupt()
        elif offset == IIR_FCR:
            self._fifo_enabled = bool(value & FCR_ENABLE_FIFO)
            if value & FCR_CLEAR_RX:
                self._rx.clear()
            self._update_interrupt()
        elif offset == LCR:
            self._lcr = value
        elif offset == MCR:
            self._set_modem_control(value & MCR_MASK)
        elif offset == SCR:
            self._scr = value
        else:
            self.unhandled_access("write", offset, size, value)  # LSR and MSR are read-only

    def _set_modem_control(self, mcr: int) -> None:
        self._mcr = mcr
        inputs = _msr_inputs_from_loopback(mcr) if mcr & MCR_LOOPBACK else MSR_INPUTS_DEFAULT
        changed = inputs ^ self._msr_inputs
        if changed:
            deltas = 0
            if changed & MSR_CTS:
                deltas |= MSR_DELTA_CTS
            if changed & MSR_DSR:
                deltas |= MSR_DELTA_DSR
            if changed & MSR_RI and not inputs & MSR_RI:
                deltas |= MSR_TRAILING_EDGE_RI
            if changed & MSR_DCD:
                deltas |= MSR_DELTA_DCD
            self._msr_inputs = inputs
            self._msr_deltas |= deltas
            self._update_interrupt()

    def _receive_looped_back(self, byte: int) -> None:
        if len(self._rx) >= RX_FIFO_CAPACITY:
            self._line_errors |= LSR_OVERRUN
        else:
            self._rx.append(byte)

    # --- host side ----------------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        """Queue host input for the guest (call on the VM's thread, e.g. through
        `ctx.clock.call_soon_threadsafe`). Ignored in loopback mode, like a real UART."""
        if not data or self._mcr & MCR_LOOPBACK:
            return
        self._rx += data
        self._update_interrupt()

    @property
    def pending_input(self) -> int:
        """Bytes of input the guest has not read yet."""
        return len(self._rx)

    def _flush_on_timer(self) -> None:
        self._flush_timer = None
        self.flush()

    def flush(self) -> None:
        """Write buffered guest output to the sink now."""
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        if not self._out:
            return
        data = bytes(self._out)
        self._out.clear()
        try:
            self._sink.write(data)
            self._sink.flush()
        except (OSError, ValueError) as exc:  # closed pipe or file: drop output, keep the guest going
            self._write_errors += 1
            if self._write_errors == 1:
                self.ctx.log.warning("%s: cannot write guest output, dropping it: %s", self.ctx.name, exc)
            return
        self.bytes_written += len(data)

    # --- device API -----------------------------------------------------------------------

    def fdt_nodes(self, base: int, irqs: Sequence[IrqLine]) -> list[FdtNode]:
        return [
            FdtNode(
                f"uart@{base:x}",
                {
                    "compatible": self.compatible[0],
                    "reg": mmio_reg(base, self.mmio_size),
                    **apb_clock_properties(),
                    "interrupts": spi_interrupt(irqs[0].gsi),
                },
            )
        ]

    def start(self) -> None:
        if self._input_pump is not None:
            self._input_pump.start()

    def stop(self) -> None:
        if self._input_pump is not None:
            self._input_pump.stop()
        self.flush()
        if self._owns_sink:
            self._sink.close()

    def save_state(self) -> dict[str, Any]:
        self.flush()
        return {
            "ier": self._ier,
            "lcr": self._lcr,
            "mcr": self._mcr,
            "scr": self._scr,
            "dll": self._dll,
            "dlm": self._dlm,
            "fifo_enabled": self._fifo_enabled,
            "thr_empty_pending": self._thr_empty_pending,
            "line_errors": self._line_errors,
            "msr_inputs": self._msr_inputs,
            "msr_deltas": self._msr_deltas,
            "irq_active": self._irq_active,
            "rx": bytes(self._rx),
        }

    def restore_state(self, state: Mapping[str, Any]) -> None:
        self._ier = state["ier"]
        self._lcr = state["lcr"]
        self._mcr = state["mcr"]
        self._scr = state["scr"]
        self._dll = state["dll"]
        self._dlm = state["dlm"]
        self._fifo_enabled = state["fifo_enabled"]
        self._thr_empty_pending = state["thr_empty_pending"]
        self._line_errors = state["line_errors"]
        self._msr_inputs = state["msr_inputs"]
        self._msr_deltas = state["msr_deltas"]
        self._irq_active = state["irq_active"]
        self._rx = bytearray(state["rx"])


@hookimpl
def petard_device_types() -> dict[str, type[Device]]:
    return {TYPE_NAME: Serial16550A}

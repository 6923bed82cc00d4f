"""The 16550A console UART, register by register on a real bus, plus the sequences Linux's
8250 driver performs (start-up THRE probe, interrupt-driven transmit and receive)."""

from __future__ import annotations

import io
import logging
import subprocess

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from petard.core.boot.fdt import FdtNode, build_dtb, decode_cells, decode_u64s, parse_dtb
from petard.core.layout import MMIO_LEN, SERIAL_START
from petard.plugins import serial as uart
from petard.plugins.serial import IER, IIR_FCR, LCR, LSR, MCR, MSR, RBR_THR, SCR

from .bench import Bench

GSI = 2
INTID = GSI + 32


@pytest.fixture
def out():
    return io.BytesIO()


@pytest.fixture
def dev(bench, out):
    return bench.place("serial", SERIAL_START, gsis=(GSI,), output=out)


def rd(bench, reg):
    return bench.bus.read(SERIAL_START + reg, 1)


def wr(bench, reg, value):
    bench.bus.write(SERIAL_START + reg, 1, value)


def edges(bench):
    return bench.sink.rising_edges(INTID)


def test_reset_state(bench, dev):
    assert rd(bench, IIR_FCR) == uart.IIR_NO_INTERRUPT
    assert rd(bench, LSR) == uart.LSR_THR_EMPTY | uart.LSR_TRANSMITTER_EMPTY
    assert rd(bench, LCR) == uart.LCR_8N1
    assert rd(bench, MSR) == uart.MSR_DCD | uart.MSR_DSR | uart.MSR_CTS
    assert rd(bench, IER) == 0
    assert edges(bench) == 0


def test_output_is_written_at_newline(bench, dev, out):
    for byte in b"hello\nwor":
        wr(bench, RBR_THR, byte)
    assert out.getvalue() == b"hello\n"
    dev.flush()
    assert out.getvalue() == b"hello\nwor"


def test_partial_line_is_written_after_the_flush_delay(bench, dev, out):
    for byte in b"$ ":
        wr(bench, RBR_THR, byte)
    assert out.getvalue() == b""
    bench.clock.advance(uart.OUTPUT_FLUSH_DELAY_NS)
    assert out.getvalue() == b"$ "
    assert dev.bytes_written == 2


def test_output_to_a_path_is_appended_and_closed_on_stop(bench, tmp_path):
    path = tmp_path / "serial.log"
    path.write_bytes(b"old\n")
    device = bench.place("serial", SERIAL_START, gsis=(GSI,), output=str(path))
    for byte in b"new":
        wr(bench, RBR_THR, byte)
    device.stop()
    assert path.read_bytes() == b"old\nnew"


def test_broken_sink_drops_output_but_keeps_the_device(bench, caplog):
    sink = io.BytesIO()
    device = bench.place("serial", SERIAL_START, gsis=(GSI,), output=sink)
    sink.close()
    with caplog.at_level(logging.WARNING):
        for byte in b"a\nb\n":
            wr(bench, RBR_THR, byte)
    assert len([r for r in caplog.records if "cannot write guest output" in r.getMessage()]) == 1
    assert not bench.bus.find(SERIAL_START).failed
    assert device.bytes_written == 0


def test_linux_thre_startup_probe_sees_the_interrupt_twice(bench, dev):
    """serial8250_do_startup: IER=THRI, read IIR, IER=0, IER=THRI, read IIR; both reads
    must report THRE or Linux marks the port UART_BUG_THRE and polls."""
    wr(bench, IIR_FCR, uart.FCR_ENABLE_FIFO)
    wr(bench, IER, uart.IER_THR_EMPTY)
    iir1 = rd(bench, IIR_FCR)
    wr(bench, IER, 0)
    wr(bench, IER, uart.IER_THR_EMPTY)
    iir2 = rd(bench, IIR_FCR)
    wr(bench, IER, 0)
    assert iir1 == iir2 == uart.IIR_FIFOS_ENABLED | uart.IIR_THR_EMPTY
    assert edges(bench) == 2
    assert rd(bench, IIR_FCR) == uart.IIR_FIFOS_ENABLED | uart.IIR_NO_INTERRUPT


def test_reading_iir_clears_thre_and_writing_thr_rearms_it(bench, dev):
    wr(bench, IER, uart.IER_THR_EMPTY)
    assert edges(bench) == 1
    assert rd(bench, IIR_FCR) == uart.IIR_THR_EMPTY
    assert rd(bench, IIR_FCR) == uart.IIR_NO_INTERRUPT
    wr(bench, IER, uart.IER_THR_EMPTY)  # no 0 -> 1 transition: nothing new
    assert rd(bench, IIR_FCR) == uart.IIR_NO_INTERRUPT
    wr(bench, RBR_THR, ord("x"))
    assert edges(bench) == 2
    assert rd(bench, IIR_FCR) == uart.IIR_THR_EMPTY


def test_receive_raises_data_ready(bench, dev):
    dev.feed(b"ok")
    assert edges(bench) == 0  # receive interrupt not enabled yet
    assert rd(bench, LSR) & uart.LSR_DATA_READY
    wr(bench, IER, uart.IER_RX_DATA)
    assert edges(bench) == 1
    assert rd(bench, IIR_FCR) == uart.IIR_RX_DATA
    assert rd(bench, RBR_THR) == ord("o")
    assert rd(bench, IIR_FCR) == uart.IIR_RX_DATA  # reading IIR does not clear data-ready
    assert rd(bench, RBR_THR) == ord("k")
    assert not rd(bench, LSR) & uart.LSR_DATA_READY
    assert rd(bench, IIR_FCR) == uart.IIR_NO_INTERRUPT
    dev.feed(b"!")
    assert edges(bench) == 2


def test_rx_data_outranks_thre(bench, dev):
    wr(bench, IER, uart.IER_RX_DATA | uart.IER_THR_EMPTY)
    dev.feed(b"z")
    assert rd(bench, IIR_FCR) == uart.IIR_RX_DATA
    rd(bench, RBR_THR)
    assert rd(bench, IIR_FCR) == uart.IIR_THR_EMPTY


def test_fifo_control_clears_receive_fifo(bench, dev):
    dev.feed(b"stale")
    wr(bench, IIR_FCR, uart.FCR_ENABLE_FIFO | uart.FCR_CLEAR_RX)
    assert dev.pending_input == 0
    assert not rd(bench, LSR) & uart.LSR_DATA_READY


def test_divisor_latch_is_separate_from_thr_and_ier(bench, dev, out):
    wr(bench, LCR, uart.LCR_DLAB | uart.LCR_8N1)
    wr(bench, RBR_THR, 0x01)
    wr(bench, IER, 0x02)
    assert (rd(bench, RBR_THR), rd(bench, IER)) == (0x01, 0x02)
    wr(bench, LCR, uart.LCR_8N1)
    assert rd(bench, IER) == 0
    dev.flush()
    assert out.getvalue() == b""
    assert edges(bench) == 0


def test_scratch_register(bench, dev):
    wr(bench, SCR, 0x5A)
    assert rd(bench, SCR) == 0x5A


def test_loopback_as_linux_autoconfig_probes_it(bench, dev, out):
    """autoconfig: MCR = LOOP|OUT2|RTS must make MSR's top nibble read 0x90."""
    wr(bench, MCR, uart.MCR_LOOPBACK | 0x0A)
    assert rd(bench, MSR) & 0xF0 == 0x90
    wr(bench, RBR_THR, 0x33)  # loops back instead of leaving the UART
    assert rd(bench, RBR_THR) == 0x33
    dev.feed(b"ignored while in loopback")
    assert dev.pending_input == 0
    dev.flush()
    assert out.getvalue() == b""


def test_modem_status_interrupt_in_loopback(bench, dev):
    wr(bench, MCR, uart.MCR_LOOPBACK)  # inputs drop: CTS, DSR and DCD change
    wr(bench, IER, uart.IER_MODEM_STATUS)
    assert edges(bench) == 1
    assert rd(bench, IIR_FCR) == uart.IIR_MODEM_STATUS
    msr = rd(bench, MSR)
    assert msr & 0x0F == uart.MSR_DELTA_CTS | uart.MSR_DELTA_DSR | uart.MSR_DELTA_DCD
    assert rd(bench, MSR) & 0x0F == 0  # deltas clear on read
    assert rd(bench, IIR_FCR) == uart.IIR_NO_INTERRUPT


def test_loopback_overrun_sets_and_clears_line_status(bench, dev):
    wr(bench, MCR, uart.MCR_LOOPBACK)
    wr(bench, IER, uart.IER_LINE_STATUS)
    for byte in range(uart.RX_FIFO_CAPACITY + 1):
        wr(bench, RBR_THR, byte)
    assert rd(bench, IIR_FCR) == uart.IIR_LINE_STATUS
    assert rd(bench, LSR) & uart.LSR_OVERRUN
    assert not rd(bench, LSR) & uart.LSR_OVERRUN
    assert rd(bench, RBR_THR) == 0  # the first byte survived


@pytest.mark.parametrize("offset, size", [(0, 4), (0, 2), (8, 1), (0xFFF, 1)])
def test_bad_accesses_are_ignored_not_fatal(bench, dev, caplog, offset, size):
    with caplog.at_level(logging.WARNING, logger="petard.plugin.serial"):
        assert bench.bus.read(SERIAL_START + offset, size) == 0
        assert bench.bus.read(SERIAL_START + offset, size) == 0
        bench.bus.write(SERIAL_START + offset, size, 0x41)
    assert not bench.bus.find(SERIAL_START).failed
    assert len(caplog.records) == 2  # one read, one write: each logged once


def run_linux_like_driver(bench, message: bytes, received: bytearray) -> None:
    """A model of serial8250's interrupt path: on every edge, loop reading IIR until "no
    interrupt", draining RX and refilling TX 16 bytes at a time (tx_loadsz of a 16550A)."""
    pending = bytearray(message)
    ier = uart.IER_RX_DATA | uart.IER_LINE_STATUS
    handled_edges = 0
    wr(bench, IER, ier)
    ier |= uart.IER_THR_EMPTY  # start_tx
    wr(bench, IER, ier)
    while handled_edges < edges(bench):
        handled_edges += 1
        while not rd(bench, IIR_FCR) & uart.IIR_NO_INTERRUPT:
            lsr = rd(bench, LSR)
            while lsr & uart.LSR_DATA_READY:
                received.append(rd(bench, RBR_THR))
                lsr = rd(bench, LSR)
            if lsr & uart.LSR_THR_EMPTY and ier & uart.IER_THR_EMPTY:
                for _ in range(16):
                    if not pending:
                        break
                    wr(bench, RBR_THR, pending.pop(0))
                if not pending:
                    ier &= ~uart.IER_THR_EMPTY  # stop_tx
                    wr(bench, IER, ier)


def test_interrupt_driven_transmit_of_a_long_message(bench, dev, out):
    message = b"Linux version 6.1.0 (debian-kernel@lists.debian.org)\n" * 3
    run_linux_like_driver(bench, message, bytearray())
    assert out.getvalue() == message
    assert not dev.interrupt_active


def test_interrupt_driven_receive(bench, dev):
    received = bytearray()
    run_linux_like_driver(bench, b"", received)
    dev.feed(b"ls -l\n")
    run_linux_like_driver(bench, b"", received)
    assert bytes(received) == b"ls -l\n"


def test_fdt_node_matches_upstream_and_compiles_with_dtc(bench, dev, tmp_path):
    (node,) = dev.fdt_nodes(SERIAL_START, dev.ctx.irqs)
    assert node.name == "uart@40002000"
    blob = build_dtb(FdtNode("", {"#address-cells": b"\0\0\0\2", "#size-cells": b"\0\0\0\2"}, [node]))
    parsed = parse_dtb(blob).root.child("uart@40002000").properties
    assert list(parsed) == ["compatible", "reg", "clocks", "clock-names", "interrupts"]
    assert parsed["compatible"] == b"ns16550a\0"
    assert decode_u64s(parsed["reg"]) == (SERIAL_START, MMIO_LEN)
    assert decode_cells(parsed["clocks"]) == (2,)
    assert parsed["clock-names"] == b"apb_pclk\0"
    assert decode_cells(parsed["interrupts"]) == (0, GSI, 1)  # SPI, GSI, edge rising
    dtb = tmp_path / "uart.dtb"
    dtb.write_bytes(blob)
    dts = subprocess.run(["dtc", "-I", "dtb", "-O", "dts", str(dtb)], capture_output=True, text=True, check=True)
    assert 'compatible = "ns16550a";' in dts.stdout
    assert "interrupts = <0x00 0x02 0x01>;" in dts.stdout


def test_save_and_restore_carry_the_guest_visible_state(bench, dev):
    wr(bench, LCR, uart.LCR_DLAB)
    wr(bench, RBR_THR, 0x0C)
    wr(bench, LCR, uart.LCR_8N1)
    wr(bench, IER, uart.IER_RX_DATA | uart.IER_THR_EMPTY)
    wr(bench, SCR, 0x77)
    dev.feed(b"queued")
    state = dev.save_state()
    clone = bench.place("serial", SERIAL_START + MMIO_LEN, gsis=(GSI + 1,), name="clone", output=io.BytesIO())
    clone.restore_state(state)
    assert clone.save_state() == state
    for reg in (IER, LCR, MCR, SCR, LSR, IIR_FCR, RBR_THR):
        assert bench.bus.read(SERIAL_START + MMIO_LEN + reg, 1) == rd(bench, reg)


# Register values biased towards the bits that matter (enables, FIFO clear, DLAB, loopback).
register_value = st.one_of(st.sampled_from([0x00, 0x01, 0x02, 0x03, 0x07, 0x0F, 0x10, 0x1F, 0x80]),
                           st.integers(0, 255))
register_access = st.tuples(st.sampled_from(["read", "write", "write", "feed", "tick"]),
                            st.integers(0, 7), register_value)


# The bench fixture is rebuilt by hand per example below; the fixture-scope check is moot.
@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(register_access, max_size=60))
def test_random_access_sequences_never_fail_or_lose_an_interrupt(accesses):
    """Any guest access sequence: the device never raises (the bus never disables it), and
    the interrupt output and the line stay in step — every time the UART's output becomes
    active the GIC sees exactly one new rising edge."""
    bench = Bench()
    try:
        dev = bench.place("serial", SERIAL_START, gsis=(GSI,), output=io.BytesIO())
        activations = 0
        was_active = False
        for kind, reg, value in accesses:
            if kind == "read":
                rd(bench, reg)
            elif kind == "write":
                wr(bench, reg, value)
            elif kind == "feed":
                dev.feed(bytes([value]))
            else:
                bench.clock.advance(value * 10_000)
            if dev.interrupt_active and not was_active:
                activations += 1
            was_active = dev.interrupt_active
            assert edges(bench) == activations
            iir_low_bits = dev._interrupt_id()
            assert (iir_low_bits != uart.IIR_NO_INTERRUPT) == dev.interrupt_active
        assert not bench.bus.find(SERIAL_START).failed
    finally:
        bench.close()


def test_input_from_a_host_pipe_arrives_on_the_vm_thread(bench):
    """The `input` option: a reader thread posts through the clock; the bytes reach the
    guest only when the VM's thread runs the clock, and the idle loop is woken."""
    import os
    import threading

    read_end, write_end = os.pipe()
    woken = threading.Event()
    bench.clock.set_wakeup(woken.set)
    dev = bench.place("serial", SERIAL_START, gsis=(GSI,), output=io.BytesIO(), input=read_end)
    try:
        wr(bench, IER, uart.IER_RX_DATA)
        os.write(write_end, b"uname -a\n")
        assert woken.wait(timeout=5)
        assert dev.pending_input == 0  # nothing touched the device from the reader thread
        bench.clock.run_due()
        assert edges(bench) == 1
        received = bytes(rd(bench, RBR_THR) for _ in range(dev.pending_input))
        assert received == b"uname -a\n"
    finally:
        dev.stop()
        os.close(write_end)
        os.close(read_end)

"""The device base class and context: defaults, IRQ-count checking, the plugin's logger."""

from __future__ import annotations

import logging

import pytest

from petard.core.clock import VirtualClock
from petard.core.device import Device, DeviceType
from petard.core.irq import IrqLine
from petard.core.layout import DRAM_START, MMIO_LEN
from petard.core.memory import GuestMemory


class Blank(Device):
    irq_count = 1


@pytest.fixture
def memory():
    mem = GuestMemory(DRAM_START, 1 << 16)
    yield mem
    mem.close()


def test_context_carries_plugin_identity_and_logger(memory):
    line = IrqLine(4)
    device = DeviceType("blank", Blank, "acme").create(
        instance_name="blank0", irqs=[line], memory=memory, clock=VirtualClock.manual())
    assert device.ctx.irqs == (line,)
    assert device.ctx.log.name == "petard.plugin.acme"
    assert (device.ctx.name, device.ctx.plugin, device.ctx.memory) == ("blank0", "acme", memory)
    assert device.mmio_size == MMIO_LEN and device.fdt_nodes(0, device.ctx.irqs) == []
    assert device.save_state() == {}


def test_wrong_number_of_irq_lines_is_rejected(memory):
    with pytest.raises(ValueError, match="needs 1 IRQ"):
        DeviceType("blank", Blank, "acme").create(
            instance_name="blank0", irqs=[], memory=memory, clock=VirtualClock.manual())


def test_default_registers_read_zero_and_log_once_per_register(memory, caplog):
    device = DeviceType("blank", Blank, "acme").create(
        instance_name="blank0", irqs=[IrqLine(0)], memory=memory, clock=VirtualClock.manual())
    with caplog.at_level(logging.WARNING, logger="petard.plugin.acme"):
        for _ in range(3):
            assert device.mmio_read(0x10, 4) == 0
            device.mmio_write(0x10, 4, 0xAA)
        device.mmio_read(0x14, 4)
    assert [r.getMessage() for r in caplog.records] == [
        "blank0: ignoring guest read, 4 byte(s) at offset 0x10",
        "blank0: ignoring guest write of 0xaa, 4 byte(s) at offset 0x10",
        "blank0: ignoring guest read, 4 byte(s) at offset 0x14",
    ]


def test_options_reach_the_constructor(memory, tmp_path):
    from petard.plugins.serial import Serial16550A

    path = tmp_path / "console.out"
    device = DeviceType("serial", Serial16550A, "serial").create(
        instance_name="serial", irqs=[IrqLine(2)], memory=memory, clock=VirtualClock.manual(),
        options={"output": path})
    device.mmio_write(0, 1, ord("\n"))
    device.stop()
    assert path.read_bytes() == b"\n"

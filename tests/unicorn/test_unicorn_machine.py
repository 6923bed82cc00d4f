"""The machine builder end to end without a Linux kernel: an assembled program wrapped as
an arm64 Image is loaded by the boot helper's loader, finds the FDT in x0, talks to the
serial device on the bus and powers off; plus device placement rules."""

import io

import pytest
from guestasm.image import build_image

from petard.core import layout
from petard.core.backend import ExitReason
from petard.core.boot.fdt import decode_cells, decode_u64s, parse_dtb
from petard.core.device import DevicePlacement
from petard.core.machine import Machine, MachineBuildError, MachineSpec, _Allocator

IMAGE_BODY = r"""
entry:
    ldr x5, =UART_THR
    ldr w1, [x0]                 // the FDT magic 0xd00dfeed, stored big-endian
    ldr w2, =0xedfe0dd0
    adr x3, fdt_ok
    cmp w1, w2
    b.eq 1f
    adr x3, fdt_bad
1:  ldrb w4, [x3], #1
    cbz w4, 2f
    strb w4, [x5]
    b 1b
2:  system_off
fdt_ok: .asciz "FDT-OK\n"
fdt_bad: .asciz "FDT-BAD\n"
"""


@pytest.fixture
def image_path(tmp_path):
    return build_image(tmp_path, IMAGE_BODY, UART_THR=layout.SERIAL_START)


@pytest.mark.parametrize("gic_version", [3, 2])
def test_machine_builds_loads_and_runs_an_image(image_path, gic_version):
    console = io.BytesIO()
    spec = MachineSpec(kernel_path=image_path, cmdline="console=ttyS0", gic_version=gic_version,
                       mem_size_mib=64, boot_timer=True, backend="unicorn",
                       devices=[DevicePlacement("serial", "serial", layout.SERIAL_START,
                                                options={"output": console}),
                                DevicePlacement("rtc", "rtc", layout.RTC_START)])
    machine = Machine.build(spec)
    vm_exit = machine.run()
    assert vm_exit.reason is ExitReason.POWER_OFF, vm_exit.describe()
    assert console.getvalue() == b"FDT-OK\n"
    # Placement: explicit addresses kept, GSIs handed out in order, boot timer at its place.
    placed = {device.name: device for device in machine.devices}
    assert placed["boot_timer"].base == layout.BOOT_TIMER_START and placed["boot_timer"].irqs == ()
    assert [line.gsi for line in placed["serial"].irqs] == [0]
    assert [line.gsi for line in placed["rtc"].irqs] == [1]
    # The FDT the guest saw describes the UART and the chosen GIC.
    dtb = parse_dtb(machine.memory.read(machine.payload.fdt_address, machine.payload.fdt_size))
    nodes = {node.name: node for node in dtb.root.children}
    uart = nodes[f"uart@{layout.SERIAL_START:x}"]
    assert decode_u64s(uart.properties["reg"]) == (layout.SERIAL_START, layout.MMIO_LEN)
    assert decode_cells(uart.properties["interrupts"])[1] == 0
    compatible = nodes["intc"].properties["compatible"]
    assert (b"arm,gic-v3" in compatible) == (gic_version == 3)


def test_allocator_skips_explicit_addresses_and_gsis():
    placements = [DevicePlacement("x", address=layout.virtio_mmio_address(0), gsis=(0, 2))]
    allocator = _Allocator(placements)
    assert allocator.address() == layout.virtio_mmio_address(1)
    assert allocator.gsis(2) == (1, 3)


def test_unsupported_gic_version_is_refused(image_path):
    with pytest.raises(MachineBuildError, match="GIC version 4"):
        Machine.build(MachineSpec(kernel_path=image_path, cmdline="", gic_version=4, backend="unicorn"))

"""The machine device tree, decompiled with the real dtc and read with fdtget."""

from __future__ import annotations

import pytest

from petard.core import layout
from petard.core.boot.fdt import FdtError, FdtNode, parse_dtb
from petard.core.boot.fdt_bindings import (
    apb_clock_properties,
    mmio_reg,
    spi_interrupt,
    virtio_mmio_node,
)
from petard.core.boot.machine_fdt import machine_fdt
from petard.core.layout import Region

from .dtc import decompile, fdtget, node_paths

MiB = layout.MiB
SEED = bytes(range(64))


def rtc_node() -> FdtNode:
    return FdtNode(
        f"rtc@{layout.RTC_START:x}",
        {"compatible": ["arm,pl031", "arm,primecell"], "reg": mmio_reg(layout.RTC_START, layout.MMIO_LEN),
         **apb_clock_properties()},
    )  # fmt: skip


def uart_node(gsi: int) -> FdtNode:
    return FdtNode(
        f"uart@{layout.SERIAL_START:x}",
        {"compatible": "ns16550a", "reg": mmio_reg(layout.SERIAL_START, layout.MMIO_LEN),
         **apb_clock_properties(), "interrupts": spi_interrupt(gsi)},
    )  # fmt: skip


def build(tmp_path, gic_version=3, mpidrs=(0x8000_0000,), devices=(), initrd=Region(0x87D0_E000, 0xF1270)):
    blob = machine_fdt(vcpu_mpidrs=list(mpidrs), mem_size=128 * MiB, cmdline="console=ttyS0 reboot=k",
                       gic_version=gic_version, initrd=initrd, device_nodes=list(devices), rng_seed=SEED)  # fmt: skip
    path = tmp_path / f"machine-v{gic_version}.dtb"
    path.write_bytes(blob)
    return blob, path


def test_nodes_appear_in_upstreams_order(tmp_path):
    devices = [rtc_node(), uart_node(2), virtio_mmio_node(0x4000_3000, 0x1000, 0), virtio_mmio_node(0x4000_4000, 0x1000, 1)]
    blob, _ = build(tmp_path, mpidrs=(0x8000_0000, 0x8000_0001), devices=devices)
    assert node_paths(decompile(blob)) == [
        "/", "/cpus", "/cpus/cpu@0", "/cpus/cpu@1", "/memory@ram", "/chosen", "/intc", "/intc/msic",
        "/timer", "/apb-pclk", "/psci", "/rtc@40001000", "/uart@40002000",
        "/virtio_mmio@40003000", "/virtio_mmio@40004000",
    ]  # fmt: skip


def test_root_cpus_memory_and_chosen(tmp_path):
    _, path = build(tmp_path, mpidrs=(0x8000_0000, 0x8100_0101))
    assert fdtget(path, "/", "compatible", "s") == "linux,dummy-virt"
    assert fdtget(path, "/", "#address-cells") == fdtget(path, "/", "#size-cells") == "2"
    assert fdtget(path, "/", "interrupt-parent") == "1"
    assert fdtget(path, "/cpus", "#size-cells") == "0"
    assert fdtget(path, "/cpus/cpu@1", "reg") == "0 101"  # MPIDR & 0x7fffff
    assert fdtget(path, "/cpus/cpu@0", "enable-method", "s") == "psci"
    assert fdtget(path, "/cpus/cpu@0", "compatible", "s") == "arm,arm-v8"
    assert fdtget(path, "/memory@ram", "reg") == "0 80200000 0 7e00000"
    assert fdtget(path, "/chosen", "bootargs", "s") == "console=ttyS0 reboot=k"
    assert fdtget(path, "/chosen", "linux,initrd-start") == "0 87d0e000"
    assert fdtget(path, "/chosen", "linux,initrd-end") == "0 87dff270"
    assert fdtget(path, "/chosen", "linux,pci-probe-only") == "1"
    assert fdtget(path, "/chosen", "rng-seed", "bx").split() == [f"{b:x}" for b in SEED]


def test_gicv3_with_its(tmp_path):
    _, path = build(tmp_path, gic_version=3, mpidrs=(0, 1, 2, 3))
    assert fdtget(path, "/intc", "compatible", "s") == "arm,gic-v3"
    assert fdtget(path, "/intc", "reg") == "0 3fff0000 0 10000 0 3ff70000 0 80000"
    assert fdtget(path, "/intc", "interrupts") == "1 9 4"
    assert fdtget(path, "/intc", "phandle") == "1"
    assert fdtget(path, "/intc", "#interrupt-cells") == "3"
    assert fdtget(path, "/intc", "interrupt-controller") == ""
    assert fdtget(path, "/intc", "ranges") == ""
    assert fdtget(path, "/intc/msic", "compatible", "s") == "arm,gic-v3-its"
    assert fdtget(path, "/intc/msic", "reg") == "0 3ff50000 0 20000"
    assert fdtget(path, "/intc/msic", "phandle") == "3"


def test_gicv2(tmp_path):
    blob, path = build(tmp_path, gic_version=2)
    assert fdtget(path, "/intc", "compatible", "s") == "arm,gic-400"
    assert fdtget(path, "/intc", "reg") == "0 3ffff000 0 1000 0 3fffd000 0 2000"
    assert fdtget(path, "/intc", "interrupts") == "1 8 4"
    assert "/intc/msic" not in node_paths(decompile(blob))


def test_timer_clock_and_psci(tmp_path):
    _, path = build(tmp_path)
    assert fdtget(path, "/timer", "compatible", "s") == "arm,armv8-timer"
    assert fdtget(path, "/timer", "interrupts", "u") == "1 13 4 1 14 4 1 11 4 1 10 4"
    assert fdtget(path, "/timer", "always-on") == ""
    assert fdtget(path, "/apb-pclk", "clock-frequency", "u") == "24000000"
    assert fdtget(path, "/apb-pclk", "clock-output-names", "s") == "clk24mhz"
    assert fdtget(path, "/apb-pclk", "phandle") == "2"
    assert fdtget(path, "/psci", "compatible", "s") == "arm,psci-0.2"
    assert fdtget(path, "/psci", "method", "s") == "hvc"


def test_device_helpers_match_upstream_shapes(tmp_path):
    _, path = build(tmp_path, devices=[rtc_node(), uart_node(2), virtio_mmio_node(0x4000_3000, 0x1000, 0)])
    assert fdtget(path, "/rtc@40001000", "compatible", "s") == "arm,pl031 arm,primecell"
    assert fdtget(path, "/rtc@40001000", "clocks") == "2"
    assert fdtget(path, "/rtc@40001000", "clock-names", "s") == "apb_pclk"
    assert fdtget(path, "/uart@40002000", "interrupts") == "0 2 1"
    virtio = "/virtio_mmio@40003000"
    assert fdtget(path, virtio, "dma-coherent") == ""
    assert fdtget(path, virtio, "compatible", "s") == "virtio,mmio"
    assert fdtget(path, virtio, "reg") == "0 40003000 0 1000"
    assert fdtget(path, virtio, "interrupts") == "0 0 1"
    assert fdtget(path, virtio, "interrupt-parent") == "1"


def test_no_initrd_means_no_initrd_properties(tmp_path):
    _, path = build(tmp_path, initrd=None)
    tree = parse_dtb(path.read_bytes()).root
    assert "linux,initrd-start" not in tree.find("chosen").properties


def test_rng_seed_is_fresh_random_by_default():
    def seed():
        blob = machine_fdt(vcpu_mpidrs=[0], mem_size=64 * MiB, cmdline="", gic_version=2)
        return parse_dtb(blob).root.find("chosen").properties["rng-seed"]

    first, second = seed(), seed()
    assert len(first) == len(second) == 64 and first != second


def test_bad_arguments_are_refused():
    with pytest.raises(FdtError, match="GIC version"):
        machine_fdt(vcpu_mpidrs=[0], mem_size=64 * MiB, cmdline="", gic_version=4)
    with pytest.raises(FdtError, match="at least one vCPU"):
        machine_fdt(vcpu_mpidrs=[], mem_size=64 * MiB, cmdline="", gic_version=3)
    huge = FdtNode("huge", {"data": bytes(layout.FDT_MAX_SIZE)})
    with pytest.raises(FdtError, match="exceeds FDT_MAX_SIZE"):
        machine_fdt(vcpu_mpidrs=[0], mem_size=64 * MiB, cmdline="", gic_version=3, device_nodes=[huge])

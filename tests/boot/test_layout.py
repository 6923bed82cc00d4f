"""The guest physical layout agrees with Firecracker's aarch64 numbers."""

from __future__ import annotations

import pytest

from petard.core import layout
from petard.core.layout import LayoutError, Region

MiB = layout.MiB


def test_contract_constants():
    assert layout.DRAM_START == 0x8000_0000
    assert layout.SYSTEM_MEM_SIZE == 0x20_0000
    assert layout.FDT_MAX_SIZE == 0x20_0000
    assert layout.CMDLINE_MAX_SIZE == 2048
    assert (layout.BOOT_TIMER_START, layout.RTC_START, layout.SERIAL_START) == (0x4000_0000, 0x4000_1000, 0x4000_2000)
    assert layout.VIRTIO_MMIO_START == 0x4000_3000
    assert layout.MMIO_LEN == 0x1000
    assert (layout.SPI_START, layout.GIC_NR_IRQS, layout.GSI_COUNT) == (32, 128, 96)
    assert (layout.PHANDLE_GIC, layout.PHANDLE_APB_CLOCK, layout.PHANDLE_MSI) == (1, 2, 3)


def test_kernel_goes_after_the_system_region_on_a_2mib_boundary():
    assert layout.kernel_load_address(0) == 0x8020_0000
    assert layout.kernel_load_address(0x8_0000) == 0x8028_0000
    assert layout.KERNEL_BASE % (2 * MiB) == 0


@pytest.mark.parametrize(
    ("mem_mib", "expected"),
    [(128, 0x87E0_0000), (256, 0x8FE0_0000), (2, 0x8000_0000), (1, layout.DRAM_START)],
)
def test_fdt_sits_in_the_last_2mib_of_dram(mem_mib, expected):
    assert layout.fdt_address(mem_mib * MiB) == expected


def test_initrd_is_directly_below_the_fdt_rounded_to_a_page():
    fdt = layout.fdt_address(128 * MiB)
    assert layout.initrd_address(128 * MiB, 4096) == fdt - 4096
    assert layout.initrd_address(128 * MiB, 4097) == fdt - 8192
    assert layout.initrd_address(128 * MiB, 987_760) == fdt - 0xF2000
    assert layout.initrd_address(128 * MiB, 0) == fdt


def test_initrd_that_does_not_fit_is_refused():
    with pytest.raises(LayoutError, match="does not fit"):
        layout.initrd_address(128 * MiB, 127 * MiB)


def test_memory_node_excludes_the_system_region():
    assert layout.memory_node_region(128 * MiB) == Region(0x8020_0000, 128 * MiB - 2 * MiB)
    with pytest.raises(LayoutError):
        layout.memory_node_region(2 * MiB)


def test_gicv3_regions_grow_down_with_the_vcpu_count():
    assert layout.gicv3_distributor_region() == Region(0x3FFF_0000, 0x1_0000)
    assert layout.gicv3_redistributor_region(1) == Region(0x3FFD_0000, 0x2_0000)
    assert layout.gicv3_redistributor_region(4) == Region(0x3FF7_0000, 0x8_0000)
    assert layout.gicv3_its_region(1) == Region(0x3FFB_0000, 0x2_0000)
    assert layout.gicv3_its_region(4) == Region(0x3FF5_0000, 0x2_0000)
    assert layout.gicv3_redistributor_region(32).end == layout.GICV3_DIST_START
    with pytest.raises(LayoutError):
        layout.gicv3_redistributor_region(0)


def test_gicv2_regions():
    assert layout.gicv2_distributor_region() == Region(0x3FFF_F000, 0x1000)
    assert layout.gicv2_cpu_interface_region() == Region(0x3FFF_D000, 0x2000)


def test_virtio_slots_follow_each_other_from_0x40003000():
    assert layout.virtio_mmio_address(0) == 0x4000_3000
    assert layout.virtio_mmio_address(1) == 0x4000_4000
    last = layout.VIRTIO_MMIO_SLOTS - 1
    assert layout.virtio_mmio_address(last) + layout.MMIO_LEN == layout.PCI_MMCONFIG_START
    for bad in (-1, layout.VIRTIO_MMIO_SLOTS):
        with pytest.raises(LayoutError):
            layout.virtio_mmio_address(bad)


def test_gsi_and_ppi_numbering():
    assert layout.gsi_to_intid(0) == 32
    assert layout.gsi_to_intid(95) == 127
    with pytest.raises(LayoutError):
        layout.gsi_to_intid(96)
    assert layout.ppi_to_intid(layout.TIMER_VIRT_PPI) == 27
    assert layout.ppi_to_intid(layout.TIMER_NONSECURE_PHYS_PPI) == 30

"""Firecracker's aarch64 guest physical layout: every guest-visible address and number, once.

This is the guest ABI petard shares with Firecracker (``arch/aarch64/layout.rs``,
``arch/aarch64/gic``, ``arch/aarch64/fdt.rs``): where DRAM, the GIC, the legacy
devices and the virtio-mmio slots live, where the kernel, initrd and device tree
are placed, which interrupt numbers and FDT phandles the guest is told about.
Everything else (loader, FDT generator, machine builder, devices, backends) reads
the numbers from here.

Picture (not to scale)::

    0x3FFF_0000 - n*128K - 128K   GICv3 ITS            (128 KiB)
    0x3FFF_0000 - n*128K          GICv3 redistributors (128 KiB per vCPU)
    0x3FFF_0000                   GICv3 distributor    (64 KiB)
    0x3FFF_D000                   GICv2 CPU interface  (8 KiB)
    0x3FFF_F000                   GICv2 distributor    (4 KiB)
    0x4000_0000                   boot timer           (MMIO_LEN each from here)
    0x4000_1000                   RTC (PL031)
    0x4000_2000                   serial (16550A)
    0x4000_3000 + i*0x1000        virtio-mmio slot i   (up to 0x7000_0000)
    0x8000_0000                   DRAM: 2 MiB system region, then the kernel
    DRAM end - 2 MiB              device tree blob; the initrd sits just below it

One DRAM region is supported (Firecracker splits DRAM around its 64-bit MMIO
window at 256 GiB; guests that large are out of scope).
"""

from __future__ import annotations

from typing import NamedTuple

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB

PAGE_SIZE = 4 * KiB
PAGE_SHIFT = PAGE_SIZE.bit_length() - 1


class LayoutError(ValueError):
    """A placement that does not fit the guest's memory or address map."""


class Region(NamedTuple):
    """A guest-physical address range [base, base + size)."""

    base: int
    size: int

    @property
    def end(self) -> int:
        return self.base + self.size


def round_up(value: int, alignment: int) -> int:
    return -(-value // alignment) * alignment


# --- DRAM and what is placed in it -------------------------------------------------

DRAM_START = 0x8000_0000
# Largest single DRAM region: from DRAM_START up to Firecracker's 64-bit MMIO window (256 GiB).
DRAM_MAX_SIZE = 0x40_0000_0000 - DRAM_START
# Head of DRAM reserved by the VMM (vmgenid, vmclock, pvtime); excluded from the FDT memory node.
SYSTEM_MEM_SIZE = 0x20_0000
# The kernel Image is copied to KERNEL_BASE + text_offset; the base must be 2 MiB aligned.
KERNEL_BASE = DRAM_START + SYSTEM_MEM_SIZE
KERNEL_BASE_ALIGNMENT = 2 * MiB
FDT_MAX_SIZE = 0x20_0000
CMDLINE_MAX_SIZE = 2048
INITRD_ALIGNMENT = PAGE_SIZE


def dram_end(mem_size: int) -> int:
    """First address past DRAM for a guest of ``mem_size`` bytes."""
    return DRAM_START + mem_size


def memory_node_region(mem_size: int) -> Region:
    """The DRAM the guest is told about: everything but the system region."""
    if mem_size <= SYSTEM_MEM_SIZE:
        raise LayoutError(f"guest memory of {mem_size} bytes leaves nothing after the system region")
    return Region(DRAM_START + SYSTEM_MEM_SIZE, mem_size - SYSTEM_MEM_SIZE)


def kernel_load_address(text_offset: int) -> int:
    """Where the Image is copied and where vCPU 0 starts (Image header ``text_offset``)."""
    assert KERNEL_BASE % KERNEL_BASE_ALIGNMENT == 0
    return KERNEL_BASE + text_offset


def fdt_address(mem_size: int) -> int:
    """Where the device tree blob goes: its FDT_MAX_SIZE window ends at the last DRAM byte.

    Falls back to DRAM_START for a guest smaller than the window, as upstream does.
    """
    if mem_size < FDT_MAX_SIZE:
        return DRAM_START
    return dram_end(mem_size) - FDT_MAX_SIZE


def initrd_address(mem_size: int, initrd_size: int) -> int:
    """Where the initrd goes: immediately below the FDT, its size rounded up to a page."""
    address = fdt_address(mem_size) - round_up(initrd_size, INITRD_ALIGNMENT)
    if address < DRAM_START:
        raise LayoutError(
            f"an initrd of {initrd_size} bytes does not fit below the device tree "
            f"in {mem_size // MiB} MiB of guest memory"
        )
    return address


# --- 32-bit MMIO window: legacy devices and virtio-mmio slots -----------------------

MMIO32_START = 0x4000_0000
MMIO32_SIZE = 0x4000_0000
MMIO_LEN = 0x1000
BOOT_TIMER_START = 0x4000_0000
RTC_START = 0x4000_1000
SERIAL_START = 0x4000_2000
VIRTIO_MMIO_START = 0x4000_3000
# The virtio-mmio slots end where Firecracker's PCI ECAM window begins.
PCI_MMCONFIG_START = 0x7000_0000
VIRTIO_MMIO_SLOTS = (PCI_MMCONFIG_START - VIRTIO_MMIO_START) // MMIO_LEN


def virtio_mmio_address(slot: int) -> int:
    """Base address of virtio-mmio slot ``slot`` (0 is the first device attached)."""
    if not 0 <= slot < VIRTIO_MMIO_SLOTS:
        raise LayoutError(f"virtio-mmio slot {slot} is outside 0..{VIRTIO_MMIO_SLOTS - 1}")
    return VIRTIO_MMIO_START + slot * MMIO_LEN


# --- Interrupt controller -----------------------------------------------------------

GICV3_DIST_START = MMIO32_START - 0x1_0000
GICV3_DIST_SIZE = 0x1_0000
GICV3_REDIST_SIZE_PER_VCPU = 0x2_0000
GICV3_ITS_SIZE = 0x2_0000
GICV2_DIST_SIZE = 0x1000
GICV2_DIST_START = MMIO32_START - GICV2_DIST_SIZE
GICV2_CPU_SIZE = 0x2000
GICV2_CPU_START = GICV2_DIST_START - GICV2_CPU_SIZE

GIC_NR_IRQS = 128  # KVM_DEV_ARM_VGIC_GRP_NR_IRQS: SGIs + PPIs + 96 SPIs
PPI_START = 16
SPI_START = 32
SPI_END = GIC_NR_IRQS - 1
GSI_COUNT = SPI_END - SPI_START + 1  # legacy GSIs 0..95, one per SPI


def gicv3_distributor_region() -> Region:
    return Region(GICV3_DIST_START, GICV3_DIST_SIZE)


def gicv3_redistributor_region(n_vcpus: int) -> Region:
    """All redistributors, one 128 KiB frame pair per vCPU, ending at the distributor."""
    if n_vcpus < 1:
        raise LayoutError(f"a GICv3 needs at least one vCPU, got {n_vcpus}")
    size = n_vcpus * GICV3_REDIST_SIZE_PER_VCPU
    return Region(GICV3_DIST_START - size, size)


def gicv3_its_region(n_vcpus: int) -> Region:
    """The ITS frame, directly below the redistributors."""
    return Region(gicv3_redistributor_region(n_vcpus).base - GICV3_ITS_SIZE, GICV3_ITS_SIZE)


def gicv2_distributor_region() -> Region:
    return Region(GICV2_DIST_START, GICV2_DIST_SIZE)


def gicv2_cpu_interface_region() -> Region:
    return Region(GICV2_CPU_START, GICV2_CPU_SIZE)


def gsi_to_intid(gsi: int) -> int:
    """GIC interrupt id of legacy GSI ``gsi`` (the FDT's SPI cell is the GSI itself)."""
    if not 0 <= gsi < GSI_COUNT:
        raise LayoutError(f"GSI {gsi} is outside 0..{GSI_COUNT - 1}")
    return gsi + SPI_START


def ppi_to_intid(ppi: int) -> int:
    return ppi + PPI_START


# PPIs the device tree hands to the guest (FDT cells are PPI numbers, INTID = PPI + 16).
TIMER_SECURE_PHYS_PPI = 13  # INTID 29
TIMER_NONSECURE_PHYS_PPI = 14  # INTID 30
TIMER_VIRT_PPI = 11  # INTID 27
TIMER_HYP_PPI = 10  # INTID 26
# The INTIDs the emulated timer raises for the two channels a guest at EL1 uses.
TIMER_VIRT_INTID = ppi_to_intid(TIMER_VIRT_PPI)
TIMER_NONSECURE_PHYS_INTID = ppi_to_intid(TIMER_NONSECURE_PHYS_PPI)
GICV3_MAINTENANCE_PPI = 9  # INTID 25
GICV2_MAINTENANCE_PPI = 8  # INTID 24

# --- Device tree handles and the one fixed clock -----------------------------------

PHANDLE_GIC = 1
PHANDLE_APB_CLOCK = 2
PHANDLE_MSI = 3
APB_CLOCK_HZ = 24_000_000

# The FDT cpu node's ``reg`` is the MPIDR masked as upstream does: Aff0, Aff1 and Aff2's low 7 bits.
MPIDR_FDT_REG_MASK = 0x7F_FFFF

"""Device tree binding numbers and property builders shared by the machine and the devices.

A device's ``fdt_nodes(base, irq_lines)`` builds its node from these, so every
node names the GIC, the APB clock and its interrupts the way Firecracker does
(the phandle numbers themselves live in ``petard.core.layout``)::

    FdtNode(f"uart@{base:x}", {
        "compatible": "ns16550a",
        "reg": mmio_reg(base, MMIO_LEN),
        **apb_clock_properties(),
        "interrupts": spi_interrupt(gsi),
    })

Every virtio-mmio transport's node is :func:`virtio_mmio_node`.
"""

from __future__ import annotations

from petard.core.boot.fdt import EMPTY, Cells, FdtNode, U64
from petard.core.layout import PHANDLE_APB_CLOCK, PHANDLE_GIC

# Interrupt specifier cells of the arm,gic-v3 / arm,gic-400 bindings: <type number flags>.
GIC_FDT_IRQ_TYPE_SPI = 0
GIC_FDT_IRQ_TYPE_PPI = 1
IRQ_TYPE_EDGE_RISING = 1
IRQ_TYPE_LEVEL_HIGH = 4

APB_CLOCK_NAME = "apb_pclk"


def mmio_reg(base: int, size: int) -> U64:
    """``reg`` of a device in the root's 2-cell address / 2-cell size space."""
    return U64(base, size)


def spi_interrupt(gsi: int, edge: bool = True) -> Cells:
    """``interrupts`` for shared interrupt ``gsi`` (the cell is the GSI; INTID = GSI + 32).

    Firecracker's devices all use rising-edge SPIs.
    """
    return Cells(GIC_FDT_IRQ_TYPE_SPI, gsi, IRQ_TYPE_EDGE_RISING if edge else IRQ_TYPE_LEVEL_HIGH)


def ppi_interrupt(ppi: int) -> Cells:
    """One level-high private interrupt, as the timer and GIC maintenance interrupts are."""
    return Cells(GIC_FDT_IRQ_TYPE_PPI, ppi, IRQ_TYPE_LEVEL_HIGH)


def apb_clock_properties() -> dict[str, object]:
    """``clocks`` + ``clock-names`` referencing the machine's fixed 24 MHz APB clock
    (what primecell devices such as the PL031 RTC require)."""
    return {"clocks": Cells(PHANDLE_APB_CLOCK), "clock-names": APB_CLOCK_NAME}


def gic_parent_property() -> dict[str, object]:
    """An explicit ``interrupt-parent`` (the root already names the GIC; virtio nodes repeat it)."""
    return {"interrupt-parent": Cells(PHANDLE_GIC)}


def virtio_mmio_node(base: int, size: int, gsi: int) -> FdtNode:
    """The node every virtio-mmio transport gets, shaped like upstream's ``create_virtio_node``."""
    return FdtNode(
        f"virtio_mmio@{base:x}",
        {
            "dma-coherent": EMPTY,
            "compatible": "virtio,mmio",
            "reg": mmio_reg(base, size),
            "interrupts": spi_interrupt(gsi),
            **gic_parent_property(),
        },
    )

"""What the vCPU loop needs from an emulated GIC, whichever version (see gicv2.py, gicv3.py)."""

from dataclasses import dataclass
from typing import Callable

from petard.core.arch.sysregs import SysReg

from .gic_state import GicState

ReadHandler = Callable[[int, int, int], int]            # (cpu, offset, size) -> value
WriteHandler = Callable[[int, int, int, int], None]     # (cpu, offset, size, value)


@dataclass(frozen=True)
class GicMmioRegion:
    name: str
    base: int
    size: int
    read: ReadHandler
    write: WriteHandler


class EmulatedGic:
    """Base of both GIC models: the shared state and the InterruptSink side."""

    def __init__(self, cpu_count: int, irq_count: int):
        self.state = GicState(cpu_count, irq_count)
        self.access_count = 0

    # InterruptSink (devices' SPIs)
    def set_irq_level(self, intid: int, level: bool) -> None:
        self.state.set_level(intid, level)

    def set_ppi_level(self, cpu: int, intid: int, level: bool) -> None:
        self.state.set_level(intid, level, cpu)

    def irq_signalled(self, cpu: int) -> bool:
        return self.state.irq_signalled(cpu)

    def mmio_regions(self) -> list[GicMmioRegion]:
        raise NotImplementedError

    # GICv3 CPU interface registers; GICv2 has none.
    def sysreg_read(self, cpu: int, reg: SysReg) -> int | None:
        return None

    def sysreg_write(self, cpu: int, reg: SysReg, value: int) -> bool:
        return False


def typer_it_lines(irq_count: int) -> int:
    """GICD_TYPER.ITLinesNumber: 32*(N+1) INTIDs."""
    return irq_count // 32 - 1


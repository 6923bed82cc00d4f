"""What the vCPU loop needs from an emulated GIC, whichever version (see gicv2.py, gicv3.py),
and its state in core's neutral terms (`GicState`), saved and restored."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from petard.core.arch import gic
from petard.core.arch.sysregs import SysReg
from petard.core.gic_state import GicCpuState, GicState, IrqState

from .gic_model import GicModel

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

    version: int                    # 2 or 3, set by each front end
    group1: bool                    # what IGROUPR reads as (the front ends do not model groups)

    def __init__(self, cpu_count: int, irq_count: int):
        self.model = GicModel(cpu_count, irq_count)
        self.access_count = 0

    # InterruptSink (devices' SPIs)
    def set_irq_level(self, intid: int, level: bool) -> None:
        self.model.set_level(intid, level)

    def set_ppi_level(self, cpu: int, intid: int, level: bool) -> None:
        self.model.set_level(intid, level, cpu)

    def irq_signalled(self, cpu: int) -> bool:
        return self.model.irq_signalled(cpu)

    def mmio_regions(self) -> list[GicMmioRegion]:
        raise NotImplementedError

    # GICv3 CPU interface registers; GICv2 has none.
    def sysreg_read(self, cpu: int, reg: SysReg) -> int | None:
        return None

    def sysreg_write(self, cpu: int, reg: SysReg, value: int) -> bool:
        return False

    # --- state in neutral terms -----------------------------------------------------------
    # What differs between the versions: the distributor's control bits, SPI routing and
    # the redistributors' sleep state.

    def _distributor_group_enables(self) -> int:
        raise NotImplementedError

    def _set_distributor_group_enables(self, enables: int) -> None:
        raise NotImplementedError

    def _spi_route(self, intid: int) -> int:
        raise NotImplementedError

    def _set_spi_route(self, intid: int, route: int) -> None:
        raise NotImplementedError

    def _redistributor_asleep(self, cpu: int) -> bool:
        return False

    def _set_redistributor_asleep(self, cpu: int, asleep: bool) -> None:
        pass

    def save_state(self) -> GicState:
        model = self.model
        with model.lock:
            spi_intids = sorted(model.shared)
            return GicState(
                version=self.version, irq_count=model.irq_count,
                distributor_group_enables=self._distributor_group_enables(),
                spis=[self._irq_state(model.shared[intid]) for intid in spi_intids],
                spi_routes=[self._spi_route(intid) for intid in spi_intids],
                cpus=[self._cpu_state(cpu) for cpu in range(model.cpu_count)])

    def _irq_state(self, irq) -> IrqState:
        return IrqState(enabled=irq.enabled, pending=irq.latched or bool(irq.sgi_sources),
                        active=irq.active, priority=irq.priority, edge=irq.edge, group1=self.group1)

    def _cpu_state(self, cpu: int) -> GicCpuState:
        model = self.model
        interface = model.cpus[cpu]
        private = model.private[cpu]
        sources = [sorted(private[intid].sgi_sources) if self.version == 2 else []
                   for intid in range(gic.SGI_COUNT)]
        return GicCpuState(private=[self._irq_state(irq) for irq in private], sgi_sources=sources,
                           interface_enabled=interface.enabled, priority_mask=interface.priority_mask,
                           binary_point=interface.binary_point, eoi_mode_split=interface.eoi_mode_split,
                           active_priorities=[priority for priority, _ in interface.active_stack],
                           redistributor_asleep=self._redistributor_asleep(cpu))

    def restore_state(self, state: GicState) -> None:
        """Load `state` (before the VM runs; the devices' lines are connected afterwards and
        bring the levels of level-triggered inputs)."""
        model = self.model
        with model.lock:
            self._set_distributor_group_enables(state.distributor_group_enables)
            for (intid, irq), saved, route in zip(sorted(model.shared.items()), state.spis, state.spi_routes):
                self._load_irq(irq, saved)
                self._set_spi_route(intid, route)
            for cpu, saved_cpu in enumerate(state.cpus):
                for intid, (irq, saved) in enumerate(zip(model.private[cpu], saved_cpu.private)):
                    self._load_irq(irq, saved)
                    if intid < gic.SGI_COUNT and self.version == 2:
                        irq.sgi_sources = set(saved_cpu.sgi_sources[intid])
                        irq.latched = saved.pending and not irq.sgi_sources
                interface = model.cpus[cpu]
                interface.enabled = saved_cpu.interface_enabled
                interface.priority_mask = saved_cpu.priority_mask
                interface.binary_point = saved_cpu.binary_point
                interface.eoi_mode_split = saved_cpu.eoi_mode_split
                interface.active_stack = self._active_stack(cpu, saved_cpu.active_priorities)
                self._set_redistributor_asleep(cpu, saved_cpu.redistributor_asleep)
            for cpu in range(model.cpu_count):
                for intid in range(model.irq_count):
                    irq = model.irq(cpu, intid)
                    if irq is not None:
                        model.track(cpu, intid, irq)
        model.changed()

    @staticmethod
    def _load_irq(irq, saved: IrqState) -> None:
        irq.enabled, irq.latched, irq.active = saved.enabled, saved.pending, saved.active
        irq.priority, irq.edge = saved.priority & gic.PRIORITY_MASK, saved.edge

    def _active_stack(self, cpu: int, priorities: list[int]) -> list[tuple[int, int]]:
        """The model pairs each active priority with the interrupt an EOI will name: the
        active interrupts of this CPU, matched by priority in the order they were taken."""
        model = self.model
        active = [(irq.priority, intid) for intid in range(model.irq_count)
                  if (irq := model.irq(cpu, intid)) is not None and irq.active
                  and (intid < gic.PRIVATE_INTID_COUNT or model.spi_target_mask.get(intid, 0) >> cpu & 1)]
        stack = []
        for priority in priorities:
            match = next((entry for entry in active if entry[0] == priority), None)
            if match is not None:
                active.remove(match)
                stack.append(match)
        return stack


def typer_it_lines(irq_count: int) -> int:
    """GICD_TYPER.ITLinesNumber: 32*(N+1) INTIDs."""
    return irq_count // 32 - 1


"""Emulated GICv3: distributor and per-CPU redistributors as MMIO, the CPU interface as
ICC_* system registers (reached through the MSR hook for writes and the undefined-
instruction trap for reads, since Unicorn's A57 has no GICv3 system registers).

Single security state (GICD_CTLR.DS=1, like KVM's vGIC), affinity routing always on, no
LPIs/ITS. SPIs are routed with GICD_IROUTER; SGIs are sent with ICC_SGI1R_EL1.
"""

from petard.core.arch import gic, sysregs
from petard.core.arch.sysregs import SysReg
from petard.core.backend import GicDescription

from .gic_common import EmulatedGic, GicMmioRegion, typer_it_lines
from .gic_registers import IrqArrays

_IIDR = 0x0300_143B             # ARM implementation, GICv3
_IROUTER_IRM = 1 << 31          # route to any participating PE
_MAX_TYPER_CPU_NUMBER = 7


def _affinity_word(mpidr: int) -> int:
    """Aff3.Aff2.Aff1.Aff0 packed into 32 bits (GICR_TYPER.Affinity_Value)."""
    return ((mpidr >> 32) & 0xFF) << 24 | (mpidr & 0xFF_FFFF)


class GicV3(EmulatedGic):
    version = 3
    group1 = True

    def __init__(self, description: GicDescription, mpidrs: list[int]):
        super().__init__(len(mpidrs), description.irq_count)
        self.description = description
        self.mpidrs = [mpidr & sysregs.MPIDR_AFFINITY_MASK for mpidr in mpidrs]
        self.distributor_control = gic.GICD_CTLR_DS | gic.GICD_CTLR_ARE
        self.spi_arrays = IrqArrays(self.model, gic.PRIVATE_INTID_COUNT, description.irq_count,
                                    groups_read_as_one=True)
        self.private_arrays = IrqArrays(self.model, 0, gic.PRIVATE_INTID_COUNT,
                                        groups_read_as_one=True)
        self.routers = {intid: 0 for intid in self.model.shared}
        self.processor_sleep = [True] * len(mpidrs)
        self.sysreg_access_count = 0

    def mmio_regions(self) -> list[GicMmioRegion]:
        d = self.description
        return [
            GicMmioRegion("gicv3-distributor", d.distributor_base, d.distributor_size,
                          self.distributor_read, self.distributor_write),
            GicMmioRegion("gicv3-redistributors", d.redistributor_base, d.redistributor_size,
                          self.redistributor_read, self.redistributor_write),
        ]

    # --- distributor ------------------------------------------------------------------

    def distributor_read(self, cpu: int, offset: int, size: int) -> int:
        self.access_count += 1
        if offset == gic.GICD_CTLR:
            return self.distributor_control
        if offset == gic.GICD_TYPER:
            return (typer_it_lines(self.model.irq_count)
                    | min(self.model.cpu_count - 1, _MAX_TYPER_CPU_NUMBER) << gic.GICD_TYPER_CPU_NUMBER_SHIFT
                    | gic.GICD_TYPER_ID_BITS_SPIS_ONLY << gic.GICD_TYPER_ID_BITS_SHIFT
                    | gic.GICD_TYPER_RSS)
        if offset == gic.GICD_IIDR:
            return _IIDR
        if offset == gic.GICD_PIDR2:
            return gic.GIC_PIDR2_ARCH_GICV3
        if self.spi_arrays.handles(offset):
            return self.spi_arrays.read(cpu, offset, size)
        if offset >= gic.GICD_IROUTER:
            intid, within = divmod(offset - gic.GICD_IROUTER, 8)
            value = self.routers.get(intid, 0)
            return (value >> (8 * within)) & ((1 << (8 * size)) - 1)
        return 0

    def distributor_write(self, cpu: int, offset: int, size: int, value: int) -> None:
        self.access_count += 1
        if offset == gic.GICD_CTLR:
            enables = value & (gic.GICD_CTLR_ENABLE_GRP0 | gic.GICD_CTLR_ENABLE_GRP1)
            self.distributor_control = gic.GICD_CTLR_DS | gic.GICD_CTLR_ARE | enables
            self.model.distributor_enabled = bool(enables)
            self.model.changed()
        elif self.spi_arrays.handles(offset):
            self.spi_arrays.write(cpu, offset, size, value)
        elif offset >= gic.GICD_IROUTER:
            intid, within = divmod(offset - gic.GICD_IROUTER, 8)
            if intid in self.routers:
                field = ((1 << (8 * size)) - 1) << (8 * within)
                router = (self.routers[intid] & ~field) | ((value << (8 * within)) & field)
                self.routers[intid] = router
                self.model.set_spi_targets(intid, self._route_mask(router))
                self.model.changed()

    def _route_mask(self, router: int) -> int:
        if router & _IROUTER_IRM:
            return 1                    # "any PE": the boot CPU takes them
        affinity = router & sysregs.MPIDR_AFFINITY_MASK  # IROUTER's affinity fields sit as MPIDR's
        for index, mpidr in enumerate(self.mpidrs):
            if mpidr == affinity:
                return 1 << index
        return 0

    def _distributor_group_enables(self) -> int:
        return self.distributor_control & (gic.GICD_CTLR_ENABLE_GRP0 | gic.GICD_CTLR_ENABLE_GRP1)

    def _set_distributor_group_enables(self, enables: int) -> None:
        enables &= gic.GICD_CTLR_ENABLE_GRP0 | gic.GICD_CTLR_ENABLE_GRP1
        self.distributor_control = gic.GICD_CTLR_DS | gic.GICD_CTLR_ARE | enables
        self.model.distributor_enabled = bool(enables)

    def _spi_route(self, intid: int) -> int:
        return self.routers[intid]

    def _set_spi_route(self, intid: int, route: int) -> None:
        self.routers[intid] = route
        self.model.set_spi_targets(intid, self._route_mask(route))

    def _redistributor_asleep(self, cpu: int) -> bool:
        return self.processor_sleep[cpu]

    def _set_redistributor_asleep(self, cpu: int, asleep: bool) -> None:
        self.processor_sleep[cpu] = asleep

    # --- redistributors ---------------------------------------------------------------

    def redistributor_read(self, _cpu: int, offset: int, size: int) -> int:
        self.access_count += 1
        target, within = divmod(offset, gic.GICR_STRIDE)
        if target >= self.model.cpu_count:
            return 0
        if within >= gic.GICR_SGI_BASE:
            within -= gic.GICR_SGI_BASE
            if self.private_arrays.handles(within):
                return self.private_arrays.read(target, within, size)
            return 0
        if gic.GICR_TYPER <= within < gic.GICR_TYPER + 8:
            typer = self._typer(target)
            shift = 8 * (within - gic.GICR_TYPER)
            return (typer >> shift) & ((1 << (8 * size)) - 1)
        if within == gic.GICR_WAKER:
            asleep = self.processor_sleep[target]
            return ((gic.GICR_WAKER_PROCESSOR_SLEEP | gic.GICR_WAKER_CHILDREN_ASLEEP)
                    if asleep else 0)
        if within == gic.GICR_IIDR:
            return _IIDR
        if within == gic.GICR_PIDR2:
            return gic.GIC_PIDR2_ARCH_GICV3
        return 0

    def _typer(self, target: int) -> int:
        last = gic.GICR_TYPER_LAST if target == self.model.cpu_count - 1 else 0
        return (_affinity_word(self.mpidrs[target]) << gic.GICR_TYPER_AFFINITY_SHIFT
                | target << gic.GICR_TYPER_PROCESSOR_NUMBER_SHIFT | last)

    def redistributor_write(self, _cpu: int, offset: int, size: int, value: int) -> None:
        self.access_count += 1
        target, within = divmod(offset, gic.GICR_STRIDE)
        if target >= self.model.cpu_count:
            return
        if within >= gic.GICR_SGI_BASE:
            within -= gic.GICR_SGI_BASE
            if self.private_arrays.handles(within):
                self.private_arrays.write(target, within, size, value)
        elif within == gic.GICR_WAKER:
            self.processor_sleep[target] = bool(value & gic.GICR_WAKER_PROCESSOR_SLEEP)

    # --- CPU interface (ICC_* system registers) ---------------------------------------

    def sysreg_read(self, cpu: int, reg: SysReg) -> int | None:
        if not sysregs.is_icc_el1_register(reg):
            return None
        self.sysreg_access_count += 1
        model = self.model
        interface = model.cpus[cpu]
        if reg == sysregs.ICC_IAR1_EL1 or reg == sysregs.ICC_IAR0_EL1:
            return model.acknowledge(cpu)[0]
        if reg == sysregs.ICC_SRE_EL1:
            return gic.ICC_SRE_SRE | gic.ICC_SRE_DFB | gic.ICC_SRE_DIB
        if reg == sysregs.ICC_PMR_EL1:
            return interface.priority_mask
        if reg == sysregs.ICC_CTLR_EL1:
            return ((gic.PRIORITY_BITS - 1) << gic.ICC_CTLR_PRI_BITS_SHIFT | gic.ICC_CTLR_RSS
                    | (gic.ICC_CTLR_EOI_MODE if interface.eoi_mode_split else 0))
        if reg == sysregs.ICC_IGRPEN1_EL1:
            return int(interface.enabled)
        if reg in (sysregs.ICC_BPR1_EL1, sysregs.ICC_BPR0_EL1):
            return interface.binary_point
        if reg == sysregs.ICC_RPR_EL1:
            return interface.running_priority
        if reg in (sysregs.ICC_HPPIR1_EL1, sysregs.ICC_HPPIR0_EL1):
            return model.highest_pending_intid(cpu)
        if sysregs.is_icc_el1_register(reg):
            return 0                    # AP0R/AP1R, IGRPEN0 and other ICC registers: zero
        return None

    def sysreg_write(self, cpu: int, reg: SysReg, value: int) -> bool:
        if not sysregs.is_icc_el1_register(reg):
            return False
        model = self.model
        interface = model.cpus[cpu]
        if reg == sysregs.ICC_EOIR1_EL1 or reg == sysregs.ICC_EOIR0_EL1:
            model.end_of_interrupt(cpu, value & gic.ICC_IAR_INTID_MASK)
        elif reg == sysregs.ICC_DIR_EL1:
            model.deactivate(cpu, value & gic.ICC_IAR_INTID_MASK)
        elif reg == sysregs.ICC_PMR_EL1:
            interface.priority_mask = value & gic.PRIORITY_MASK
            model.changed([cpu])
        elif reg == sysregs.ICC_IGRPEN1_EL1:
            interface.enabled = bool(value & gic.ICC_IGRPEN_ENABLE)
            model.changed([cpu])
        elif reg == sysregs.ICC_CTLR_EL1:
            interface.eoi_mode_split = bool(value & gic.ICC_CTLR_EOI_MODE)
        elif reg in (sysregs.ICC_BPR1_EL1, sysregs.ICC_BPR0_EL1):
            interface.binary_point = value & 0x7
        elif reg in (sysregs.ICC_SGI1R_EL1, sysregs.ICC_ASGI1R_EL1, sysregs.ICC_SGI0R_EL1):
            self._send_sgi(cpu, value)
        elif sysregs.is_icc_el1_register(reg):
            pass                        # SRE, IGRPEN0, AP0R/AP1R: accepted, no effect
        else:
            return False
        self.sysreg_access_count += 1
        return True

    def _send_sgi(self, cpu: int, value: int) -> None:
        intid = (value >> gic.ICC_SGI1R_INTID_SHIFT) & 0xF
        if value & gic.ICC_SGI1R_IRM:
            targets = [index for index in range(self.model.cpu_count) if index != cpu]
        else:
            upper = (((value >> gic.ICC_SGI1R_AFF3_SHIFT) & 0xFF) << 32
                     | ((value >> gic.ICC_SGI1R_AFF2_SHIFT) & 0xFF) << 16
                     | ((value >> gic.ICC_SGI1R_AFF1_SHIFT) & 0xFF) << 8)
            target_list = value & gic.ICC_SGI1R_TARGET_LIST_MASK
            first_aff0 = (((value >> gic.ICC_SGI1R_RS_SHIFT) & gic.ICC_SGI1R_RS_MASK)
                          * gic.ICC_SGI1R_TARGETS_PER_RANGE)
            wanted = {upper | (first_aff0 + bit)
                      for bit in range(gic.ICC_SGI1R_TARGETS_PER_RANGE) if target_list >> bit & 1}
            targets = [index for index, mpidr in enumerate(self.mpidrs) if mpidr in wanted]
        for target in targets:
            self.model.send_sgi(target, intid, cpu)

"""Emulated GICv2: distributor and CPU interface as MMIO (no system registers).

No security extensions: one interrupt group, IGROUPR reads as zero. SGIs are sent with
GICD_SGIR and acknowledged with the sender's CPU number in GICC_IAR[12:10].
"""

from petard.core.arch import gic
from petard.core.backend import GicDescription

from .gic_common import EmulatedGic, GicMmioRegion, typer_it_lines
from .gic_registers import IrqArrays

_DISTRIBUTOR_IIDR = 0x0200_143B     # ARM implementation, GICv2


class GicV2(EmulatedGic):
    version = 2
    group1 = False

    def __init__(self, description: GicDescription, cpu_count: int):
        if cpu_count > gic.GICV2_MAX_CPUS:
            raise ValueError(f"GICv2 supports at most {gic.GICV2_MAX_CPUS} vCPUs, not {cpu_count}: "
                             "use GICv3")
        super().__init__(cpu_count, description.irq_count)
        self.description = description
        self.arrays = IrqArrays(self.model, 0, description.irq_count, groups_read_as_one=False)

    def mmio_regions(self) -> list[GicMmioRegion]:
        d = self.description
        return [
            GicMmioRegion("gicv2-distributor", d.distributor_base, d.distributor_size,
                          self.distributor_read, self.distributor_write),
            GicMmioRegion("gicv2-cpu-interface", d.cpu_interface_base, d.cpu_interface_size,
                          self.cpu_interface_read, self.cpu_interface_write),
        ]

    # --- distributor ------------------------------------------------------------------

    def distributor_read(self, cpu: int, offset: int, size: int) -> int:
        self.access_count += 1
        model = self.model
        if offset == gic.GICD_CTLR:
            return int(model.distributor_enabled)
        if offset == gic.GICD_TYPER:
            return (typer_it_lines(model.irq_count)
                    | (model.cpu_count - 1) << gic.GICD_TYPER_CPU_NUMBER_SHIFT)
        if offset == gic.GICD_IIDR:
            return _DISTRIBUTOR_IIDR
        if self.arrays.handles(offset):
            return self.arrays.read(cpu, offset, size)
        if gic.GICD_ITARGETSR <= offset < gic.GICD_ITARGETSR + model.irq_count:
            value = 0
            for byte in range(size):
                intid = offset - gic.GICD_ITARGETSR + byte
                mask = (1 << cpu) if intid < gic.PRIVATE_INTID_COUNT else model.spi_target_mask.get(intid, 0)
                value |= (mask & 0xFF) << (8 * byte)
            return value
        return 0

    def distributor_write(self, cpu: int, offset: int, size: int, value: int) -> None:
        self.access_count += 1
        model = self.model
        if offset == gic.GICD_CTLR:
            model.distributor_enabled = bool(value & 1)
            model.changed()
        elif self.arrays.handles(offset):
            self.arrays.write(cpu, offset, size, value)
        elif gic.GICD_ITARGETSR <= offset < gic.GICD_ITARGETSR + model.irq_count:
            for byte in range(size):
                intid = offset - gic.GICD_ITARGETSR + byte
                if intid >= gic.PRIVATE_INTID_COUNT:
                    model.set_spi_targets(intid, (value >> (8 * byte)) & 0xFF)
            model.changed()
        elif offset == gic.GICD_SGIR:
            self._send_sgi(cpu, value)

    def _send_sgi(self, cpu: int, value: int) -> None:
        intid = value & gic.SGIR_INTID_MASK
        target_filter = (value >> gic.SGIR_TARGET_FILTER_SHIFT) & 0x3
        if target_filter == gic.SGIR_FILTER_LIST:
            targets = (value >> gic.SGIR_TARGET_LIST_SHIFT) & 0xFF
        elif target_filter == gic.SGIR_FILTER_ALL_BUT_SELF:
            targets = ((1 << self.model.cpu_count) - 1) & ~(1 << cpu)
        elif target_filter == gic.SGIR_FILTER_SELF:
            targets = 1 << cpu
        else:
            return
        for target in range(self.model.cpu_count):
            if targets >> target & 1:
                self.model.send_sgi(target, intid, cpu)

    def _distributor_group_enables(self) -> int:
        return int(self.model.distributor_enabled)

    def _set_distributor_group_enables(self, enables: int) -> None:
        self.model.distributor_enabled = bool(enables & 1)

    def _spi_route(self, intid: int) -> int:
        return self.model.spi_target_mask[intid]

    def _set_spi_route(self, intid: int, route: int) -> None:
        self.model.set_spi_targets(intid, route & 0xFF)

    # --- CPU interface ----------------------------------------------------------------

    def cpu_interface_read(self, cpu: int, offset: int, size: int) -> int:
        self.access_count += 1
        interface = self.model.cpus[cpu]
        if offset == gic.GICC_IAR:
            intid, source = self.model.acknowledge(cpu)
            return intid | (source << gic.GICC_IAR_CPUID_SHIFT if intid < gic.SGI_COUNT else 0)
        if offset == gic.GICC_CTLR:
            return (int(interface.enabled)
                    | (gic.GICC_CTLR_EOI_MODE if interface.eoi_mode_split else 0))
        if offset == gic.GICC_PMR:
            return interface.priority_mask
        if offset == gic.GICC_BPR:
            return interface.binary_point
        if offset == gic.GICC_RPR:
            return interface.running_priority
        if offset == gic.GICC_HPPIR:
            return self.model.highest_pending_intid(cpu)
        if offset == gic.GICC_IIDR:
            return gic.GICC_IIDR_GICV2
        return 0

    def cpu_interface_write(self, cpu: int, offset: int, size: int, value: int) -> None:
        self.access_count += 1
        interface = self.model.cpus[cpu]
        if offset == gic.GICC_EOIR:
            self.model.end_of_interrupt(cpu, value & gic.GICC_IAR_INTID_MASK)
        elif offset == gic.GICC_DIR:
            self.model.deactivate(cpu, value & gic.GICC_IAR_INTID_MASK)
        elif offset == gic.GICC_CTLR:
            interface.enabled = bool(value & gic.GICC_CTLR_ENABLE)
            interface.eoi_mode_split = bool(value & gic.GICC_CTLR_EOI_MODE)
            self.model.changed([cpu])
        elif offset == gic.GICC_PMR:
            interface.priority_mask = value & gic.PRIORITY_MASK
            self.model.changed([cpu])
        elif offset == gic.GICC_BPR:
            interface.binary_point = value & 0x7

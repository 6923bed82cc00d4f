"""The in-kernel vGIC's state as core's neutral `GicState`, through its device attributes
(Documentation/virt/kvm/devices/arm-vgic.rst and arm-vgic-v3.rst).

Every register is a 32-bit device attribute: the distributor's by offset (GRP_DIST_REGS),
on v3 a CPU's redistributor by MPIDR and offset into its two frames (GRP_REDIST_REGS) and
its CPU interface by MPIDR and system-register encoding (GRP_CPU_SYSREGS), on v2 banked
registers and the CPU interface by vCPU index (GRP_DIST_REGS, GRP_CPU_REGS). Reading
ISPENDR this way gives the pending latch, not the line level: the neutral state's meaning.
Writing ISPENDR this way sets the latch to the value written (ICPENDR is ignored), enables
and active states are set and cleared through their two views as on hardware.
Two of KVM's own conventions: the v2 CPU interface's GICC_PMR holds the priority mask's top
five bits (GICH_VMCR.VMPriMask), and the active-priority registers have one bit per
preemption level, priority = level << 3 with KVM's five priority bits.

A restore writes GICD_IIDR back first (KVM ignores group writes on v2 until then), then
the interrupts, then the CPU interfaces, and the distributor's enables last.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from petard.core.arch import gic
from petard.core.arch import sysregs
from petard.core.arch.sysregs import SysReg
from petard.core.gic_state import GicCpuState, GicState, IrqState

from . import kvm_abi as abi
from .ioctls import KvmDeviceFd

_PRIVATE = gic.PRIVATE_INTID_COUNT
_WORD = 0xFFFF_FFFF
_PRIORITY_LEVEL_SHIFT = 8 - gic.PRIORITY_BITS
_GICC_PMR_SHIFT = 8 - gic.PRIORITY_BITS
_GICC_APR0 = gic.GICC_APR0
_GICD_SPENDSGIR = gic.GICD_SPENDSGIR
# The one-bit arrays are read through their "set" view and written through both views.
_ENABLED, _PENDING, _ACTIVE, _GROUP = gic.GICD_ISENABLER, gic.GICD_ISPENDR, gic.GICD_ISACTIVER, gic.GICD_IGROUPR
_DISABLE, _UNPEND, _DEACTIVATE = gic.GICD_ICENABLER, gic.GICD_ICPENDR, gic.GICD_ICACTIVER

Reader = Callable[[int], int]
Writer = Callable[[int, int], None]


def _sysreg_encoding(reg: SysReg) -> int:
    return reg.op0 << 14 | reg.op1 << 11 | reg.crn << 7 | reg.crm << 3 | reg.op2


def _bit(read: Reader, base: int, intid: int) -> bool:
    return bool(read(base + 4 * (intid // 32)) >> (intid % 32) & 1)


def _byte(read: Reader, base: int, intid: int) -> int:
    return read(base + (intid & ~3)) >> (8 * (intid % 4)) & 0xFF


def _read_irqs(read: Reader, intids: range, group1_default: bool | None = None) -> list[IrqState]:
    """The interrupt arrays at their distributor offsets (the redistributor's SGI frame uses
    the same ones for its 32 private INTIDs)."""
    words: dict[int, int] = {}

    def cached(offset: int) -> int:
        if offset not in words:
            words[offset] = read(offset) & _WORD
        return words[offset]

    return [IrqState(enabled=_bit(cached, _ENABLED, intid), pending=_bit(cached, _PENDING, intid),
                     active=_bit(cached, _ACTIVE, intid), priority=_byte(cached, gic.GICD_IPRIORITYR, intid),
                     edge=bool(cached(gic.GICD_ICFGR + 4 * (intid // 16)) >> (2 * (intid % 16)) & gic.ICFGR_EDGE),
                     group1=_bit(cached, _GROUP, intid))
            for intid in intids]


def _write_irqs(write: Writer, intids: range, irqs: Sequence[IrqState], configurable_from: int) -> None:
    """Write the arrays for `intids` (a multiple of 32 wide), every bit, cleared ones too (a
    fresh vGIC has SGIs enabled, say); ICFGR only from INTID `configurable_from` (SGIs are
    always edge-triggered, their ICFGR read-only)."""
    first = intids.start
    for set_offset, clear_offset, flag in ((_GROUP, None, "group1"), (_ENABLED, _DISABLE, "enabled"),
                                           (_PENDING, _UNPEND, "pending"), (_ACTIVE, _DEACTIVATE, "active")):
        for word_start in range(first, intids.stop, 32):
            value = present = 0
            for intid in range(word_start, min(word_start + 32, intids.stop)):
                value |= int(getattr(irqs[intid - first], flag)) << (intid % 32)
                present |= 1 << (intid % 32)
            word = 4 * (word_start // 32)
            if clear_offset is not None:
                write(clear_offset + word, present & ~value)
            write(set_offset + word, value)
    for word_start in range(first, intids.stop, 4):
        value = 0
        for intid in range(word_start, min(word_start + 4, intids.stop)):
            value |= (irqs[intid - first].priority & gic.PRIORITY_MASK) << (8 * (intid % 4))
        write(gic.GICD_IPRIORITYR + word_start, value)
    for word_start in range(max(first, configurable_from), intids.stop, 16):
        value = 0
        for intid in range(word_start, min(word_start + 16, intids.stop)):
            value |= (gic.ICFGR_EDGE if irqs[intid - first].edge else 0) << (2 * (intid % 16))
        write(gic.GICD_ICFGR + 4 * (word_start // 16), value)


def _priorities_from_bitmap(bitmap: int) -> list[int]:
    """Active priorities, in the order they were taken (the least urgent first)."""
    return sorted((level << _PRIORITY_LEVEL_SHIFT for level in range(32) if bitmap >> level & 1), reverse=True)


def _bitmap_from_priorities(priorities: Sequence[int]) -> int:
    bitmap = 0
    for priority in priorities:
        bitmap |= 1 << ((priority & gic.PRIORITY_MASK) >> _PRIORITY_LEVEL_SHIFT)
    return bitmap


class VgicRegisters:
    """Reads and writes the vGIC's registers for one version (`device` is the vGIC's fd,
    `mpidrs` the vCPUs' MPIDRs in vCPU order)."""

    def __init__(self, device: KvmDeviceFd, version: int, irq_count: int, mpidrs: Sequence[int]):
        self.device = device
        self.version = version
        self.irq_count = irq_count
        self.mpidrs = list(mpidrs)

    # --- attribute access ---------------------------------------------------------------

    def _distributor(self, cpu: int = 0) -> tuple[Reader, Writer]:
        banked = cpu << abi.KVM_DEV_ARM_VGIC_CPUID_SHIFT if self.version == 2 else 0
        group = abi.KVM_DEV_ARM_VGIC_GRP_DIST_REGS
        return (lambda offset: self.device.get_attr(group, banked | offset),
                lambda offset, value: self.device.set_attr(group, banked | offset, value & _WORD))

    def _private_frame(self, cpu: int) -> tuple[Reader, Writer]:
        """The registers of a CPU's SGIs and PPIs, at their distributor offsets."""
        if self.version == 2:
            return self._distributor(cpu)
        field = abi.vgic_v3_mpidr_field(self.mpidrs[cpu])
        group = abi.KVM_DEV_ARM_VGIC_GRP_REDIST_REGS
        return (lambda offset: self.device.get_attr(group, field | gic.GICR_SGI_BASE + offset),
                lambda offset, value: self.device.set_attr(group, field | gic.GICR_SGI_BASE + offset, value & _WORD))

    def _redistributor(self, cpu: int) -> tuple[Reader, Writer]:
        field = abi.vgic_v3_mpidr_field(self.mpidrs[cpu])
        group = abi.KVM_DEV_ARM_VGIC_GRP_REDIST_REGS
        return (lambda offset: self.device.get_attr(group, field | offset),
                lambda offset, value: self.device.set_attr(group, field | offset, value & _WORD))

    def _cpu_sysreg(self, cpu: int) -> tuple[Callable[[SysReg], int], Callable[[SysReg, int], None]]:
        field = abi.vgic_v3_mpidr_field(self.mpidrs[cpu])
        group = abi.KVM_DEV_ARM_VGIC_GRP_CPU_SYSREGS
        return (lambda reg: self.device.get_attr(group, field | _sysreg_encoding(reg)),
                lambda reg, value: self.device.set_attr(group, field | _sysreg_encoding(reg), value))

    def _cpu_interface(self, cpu: int) -> tuple[Reader, Writer]:
        banked = cpu << abi.KVM_DEV_ARM_VGIC_CPUID_SHIFT
        group = abi.KVM_DEV_ARM_VGIC_GRP_CPU_REGS
        return (lambda offset: self.device.get_attr(group, banked | offset) & _WORD,
                lambda offset, value: self.device.set_attr(group, banked | offset, value & _WORD))

    # --- save ----------------------------------------------------------------------------

    def save(self) -> GicState:
        read, _ = self._distributor()
        spis = range(_PRIVATE, self.irq_count)
        state = GicState(version=self.version, irq_count=self.irq_count,
                         distributor_group_enables=read(gic.GICD_CTLR) & (gic.GICD_CTLR_ENABLE_GRP0
                                                                          | gic.GICD_CTLR_ENABLE_GRP1),
                         spis=_read_irqs(read, spis), spi_routes=[self._route(read, intid) for intid in spis])
        if self.version == 2:
            state.distributor_group_enables &= 1        # v2 without security: one enable bit
        state.cpus = [self._save_cpu(cpu) for cpu in range(len(self.mpidrs))]
        return state

    def _route(self, read: Reader, intid: int) -> int:
        if self.version == 3:
            offset = gic.GICD_IROUTER + 8 * intid
            return (read(offset) & _WORD) | (read(offset + 4) & _WORD) << 32
        return _byte(read, gic.GICD_ITARGETSR, intid)

    def _save_cpu(self, cpu: int) -> GicCpuState:
        read_private, _ = self._private_frame(cpu)
        saved = GicCpuState(private=_read_irqs(read_private, range(_PRIVATE)))
        if self.version == 3:
            read_rd, _ = self._redistributor(cpu)
            saved.redistributor_asleep = bool(read_rd(gic.GICR_WAKER) & gic.GICR_WAKER_PROCESSOR_SLEEP)
            get, _ = self._cpu_sysreg(cpu)
            saved.interface_enabled = bool(get(sysregs.ICC_IGRPEN1_EL1) & gic.ICC_IGRPEN_ENABLE)
            saved.priority_mask = get(sysregs.ICC_PMR_EL1) & gic.PRIORITY_MASK
            saved.binary_point = get(sysregs.ICC_BPR1_EL1) & 0x7
            saved.eoi_mode_split = bool(get(sysregs.ICC_CTLR_EL1) & gic.ICC_CTLR_EOI_MODE)
            saved.active_priorities = _priorities_from_bitmap(get(sysregs.ICC_AP1R0_EL1))
        else:
            saved.redistributor_asleep = False
            read_dist, _ = self._distributor(cpu)
            pending_from = [_byte(read_dist, _GICD_SPENDSGIR, intid) for intid in range(gic.SGI_COUNT)]
            saved.sgi_sources = [[source for source in range(gic.GICV2_MAX_CPUS) if sources >> source & 1]
                                 for sources in pending_from]
            read_cpu, _ = self._cpu_interface(cpu)
            control = read_cpu(gic.GICC_CTLR)
            saved.interface_enabled = bool(control & gic.GICC_CTLR_ENABLE)
            saved.eoi_mode_split = bool(control & gic.GICC_CTLR_EOI_MODE)
            saved.priority_mask = (read_cpu(gic.GICC_PMR) << _GICC_PMR_SHIFT) & gic.PRIORITY_MASK
            saved.binary_point = read_cpu(gic.GICC_BPR) & 0x7
            saved.active_priorities = _priorities_from_bitmap(read_cpu(_GICC_APR0))
        return saved

    # --- restore -------------------------------------------------------------------------

    def restore(self, state: GicState) -> None:
        read, write = self._distributor()
        write(gic.GICD_IIDR, read(gic.GICD_IIDR))
        for cpu, saved in enumerate(state.cpus):
            self._restore_private(cpu, saved)
        spis = range(_PRIVATE, self.irq_count)
        _write_irqs(write, spis, state.spis, configurable_from=_PRIVATE)
        for intid, route in zip(spis, state.spi_routes):
            if self.version == 3:
                offset = gic.GICD_IROUTER + 8 * intid
                write(offset, route & _WORD)
                write(offset + 4, route >> 32)
        if self.version == 2:
            for word_start in range(_PRIVATE, self.irq_count, 4):
                value = 0
                for intid, route in zip(range(word_start, word_start + 4), state.spi_routes[word_start - _PRIVATE:]):
                    value |= (route & 0xFF) << (8 * (intid % 4))
                write(gic.GICD_ITARGETSR + word_start, value)
        for cpu, saved in enumerate(state.cpus):
            self._restore_cpu_interface(cpu, saved)
        write(gic.GICD_CTLR, state.distributor_group_enables)

    def _restore_private(self, cpu: int, saved: GicCpuState) -> None:
        _, write_private = self._private_frame(cpu)
        _write_irqs(write_private, range(_PRIVATE), saved.private, configurable_from=gic.SGI_COUNT)
        if self.version == 3:
            _, write_rd = self._redistributor(cpu)
            write_rd(gic.GICR_WAKER, gic.GICR_WAKER_PROCESSOR_SLEEP if saved.redistributor_asleep else 0)
            return
        _, write_dist = self._distributor(cpu)
        for word_start in range(0, gic.SGI_COUNT, 4):
            value = 0
            for intid in range(word_start, word_start + 4):
                for source in saved.sgi_sources[intid]:
                    value |= 1 << (8 * (intid % 4) + source)
            if value:
                write_dist(_GICD_SPENDSGIR + word_start, value)

    def _restore_cpu_interface(self, cpu: int, saved: GicCpuState) -> None:
        if self.version == 3:
            get, put = self._cpu_sysreg(cpu)
            control = get(sysregs.ICC_CTLR_EL1)
            control &= ~gic.ICC_CTLR_EOI_MODE
            control |= gic.ICC_CTLR_EOI_MODE if saved.eoi_mode_split else 0
            put(sysregs.ICC_CTLR_EL1, control)
            put(sysregs.ICC_PMR_EL1, saved.priority_mask)
            put(sysregs.ICC_BPR1_EL1, saved.binary_point)
            put(sysregs.ICC_AP1R0_EL1, _bitmap_from_priorities(saved.active_priorities))
            put(sysregs.ICC_IGRPEN1_EL1, gic.ICC_IGRPEN_ENABLE if saved.interface_enabled else 0)
            return
        _, put = self._cpu_interface(cpu)
        put(gic.GICC_PMR, saved.priority_mask >> _GICC_PMR_SHIFT)
        put(gic.GICC_BPR, saved.binary_point)
        put(_GICC_APR0, _bitmap_from_priorities(saved.active_priorities))
        put(gic.GICC_CTLR, (gic.GICC_CTLR_ENABLE if saved.interface_enabled else 0)
            | (gic.GICC_CTLR_EOI_MODE if saved.eoi_mode_split else 0))

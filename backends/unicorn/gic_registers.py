"""The per-INTID register arrays common to the GIC distributor (v2, v3) and the GICv3
redistributor SGI frame: IGROUPR, IS/IC-ENABLER, IS/IC-PENDR, IS/IC-ACTIVER, IPRIORITYR,
ICFGR, IGRPMODR. Accesses of any size are handled byte by byte over a `GicModel`.
"""

from petard.core.arch import gic

from .gic_model import GicModel

# offset of the array -> bits per INTID
_ARRAYS = {
    gic.GICD_IGROUPR: 1, gic.GICD_ISENABLER: 1, gic.GICD_ICENABLER: 1,
    gic.GICD_ISPENDR: 1, gic.GICD_ICPENDR: 1, gic.GICD_ISACTIVER: 1, gic.GICD_ICACTIVER: 1,
    gic.GICD_IPRIORITYR: 8, gic.GICD_ICFGR: 2, gic.GICD_IGRPMODR: 1,
}
_ARRAY_BYTES = 0x80          # each 1-bit array spans 1024 INTIDs


def _locate(offset: int) -> tuple[int, int] | None:
    """(array base, bits per INTID) for an offset inside one of the arrays."""
    for base, bits in _ARRAYS.items():
        if base <= offset < base + _ARRAY_BYTES * bits:
            return base, bits
    return None


class IrqArrays:
    """Register view over the INTIDs in [first_intid, end_intid) of a `GicModel`.

    `groups_read_as_one`: GICv3 (all interrupts Group 1, as Linux configures them); GICv2
    without security extensions reads IGROUPR as zero.
    """

    def __init__(self, model: GicModel, first_intid: int, end_intid: int, groups_read_as_one: bool):
        self.model = model
        self.first_intid = first_intid
        self.end_intid = end_intid
        self.groups_read_as_one = groups_read_as_one

    def handles(self, offset: int) -> bool:
        return _locate(offset) is not None

    def read(self, cpu: int, offset: int, size: int) -> int:
        base, bits = _locate(offset)
        value = 0
        for byte in range(size):
            value |= self._read_byte(cpu, base, bits, offset - base + byte) << (8 * byte)
        return value

    def write(self, cpu: int, offset: int, size: int, value: int) -> None:
        base, bits = _locate(offset)
        for byte in range(size):
            self._write_byte(cpu, base, bits, offset - base + byte, (value >> (8 * byte)) & 0xFF)

    def _intids(self, bits: int, byte_index: int):
        per_byte = 8 // bits
        first = byte_index * per_byte
        for slot in range(per_byte):
            intid = first + slot
            if self.first_intid <= intid < self.end_intid:
                yield slot, intid

    def _read_byte(self, cpu: int, base: int, bits: int, byte_index: int) -> int:
        result = 0
        for slot, intid in self._intids(bits, byte_index):
            irq = self.model.irq(cpu, intid)
            if irq is None:
                continue
            if base == gic.GICD_IPRIORITYR:
                return irq.priority
            if base == gic.GICD_ICFGR:
                field = gic.ICFGR_EDGE if irq.edge else 0
                result |= field << (2 * slot)
                continue
            if base in (gic.GICD_IGROUPR, gic.GICD_IGRPMODR):
                bit = self.groups_read_as_one and base == gic.GICD_IGROUPR
            elif base in (gic.GICD_ISENABLER, gic.GICD_ICENABLER):
                bit = irq.enabled
            elif base in (gic.GICD_ISPENDR, gic.GICD_ICPENDR):
                bit = irq.pending
            else:
                bit = irq.active
            result |= int(bit) << slot
        return result

    def _write_byte(self, cpu: int, base: int, bits: int, byte_index: int, value: int) -> None:
        model = self.model
        for slot, intid in self._intids(bits, byte_index):
            irq = model.irq(cpu, intid)
            if irq is None:
                continue
            if base == gic.GICD_IPRIORITYR:
                irq.priority = value & gic.PRIORITY_MASK
                model.changed([cpu])
                return
            if base == gic.GICD_ICFGR:
                if intid >= gic.SGI_COUNT:      # SGIs are always edge-triggered
                    irq.edge = bool((value >> (2 * slot)) & gic.ICFGR_EDGE)
                continue
            if not value >> slot & 1:
                continue
            if base == gic.GICD_ISENABLER:
                model.set_enabled(cpu, intid, True)
            elif base == gic.GICD_ICENABLER:
                model.set_enabled(cpu, intid, False)
            elif base == gic.GICD_ISPENDR:
                model.set_pending(cpu, intid, True)
            elif base == gic.GICD_ICPENDR:
                model.set_pending(cpu, intid, False)
            elif base == gic.GICD_ISACTIVER:
                model.set_active(cpu, intid, True)
            elif base == gic.GICD_ICACTIVER:
                model.set_active(cpu, intid, False)

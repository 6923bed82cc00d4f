"""Assembler macros driving the GIC from test guests, one set per GIC version, same names:
gic_init, gic_enable INTID, gic_priority INTID PRIO, gic_pmr Xn, gic_ack Xn, gic_eoi Xn,
gic_rpr Xn, gic_pending Xn INTID (Xn = 1 if pending), gic_sgi_self INTID.
Offsets come from petard.core.arch.gic. Scratch registers: x24-x26."""

from petard.core.arch import gic


def _common_constants() -> str:
    names = ["GICD_CTLR", "GICD_ISENABLER", "GICD_ISPENDR", "GICD_IPRIORITYR", "GICD_ITARGETSR",
             "GICD_SGIR", "GICR_WAKER", "GICR_SGI_BASE", "GICC_CTLR", "GICC_PMR", "GICC_IAR",
             "GICC_EOIR", "GICC_RPR", "GICD_CTLR_ENABLE_GRP1", "GICD_CTLR_ARE"]
    return "\n".join(f".equ {name}, {getattr(gic, name):#x}" for name in names) + "\n"


_DISTRIBUTOR_MACROS = r"""
.macro gic_enable intid
    ldr x24, =GICD_BASE
    .if \intid < 32
    gic_private_base x24
    .endif
    mov w25, #(1 << (\intid % 32))
    str w25, [x24, #(GICD_ISENABLER + 4 * (\intid / 32))]
.endm
.macro gic_priority intid, prio
    ldr x24, =GICD_BASE
    .if \intid < 32
    gic_private_base x24
    .endif
    mov w25, #\prio
    strb w25, [x24, #(GICD_IPRIORITYR + \intid)]
.endm
.macro gic_pending reg, intid
    ldr x24, =GICD_BASE
    .if \intid < 32
    gic_private_base x24
    .endif
    ldr w25, [x24, #(GICD_ISPENDR + 4 * (\intid / 32))]
    ubfx \reg, x25, #(\intid % 32), #1
.endm
"""

GICV3_MACROS = r"""
.macro gic_private_base reg
    ldr \reg, =(GICR_BASE + GICR_SGI_BASE)
.endm
.macro gic_init
    ldr x24, =GICD_BASE
    mov w25, #(GICD_CTLR_ENABLE_GRP1 | GICD_CTLR_ARE)
    str w25, [x24, #GICD_CTLR]
    ldr x24, =GICR_BASE
    str wzr, [x24, #GICR_WAKER]
    mov x25, #0xf0
    msr ICC_PMR_EL1, x25
    mov x25, #1
    msr ICC_IGRPEN1_EL1, x25
    isb
.endm
.macro gic_pmr reg
    msr ICC_PMR_EL1, \reg
.endm
.macro gic_ack reg
    mrs \reg, ICC_IAR1_EL1
.endm
.macro gic_eoi reg
    msr ICC_EOIR1_EL1, \reg
.endm
.macro gic_rpr reg
    mrs \reg, ICC_RPR_EL1
.endm
.macro gic_sgi_self intid
    ldr x25, =((\intid << 24) | 1)    // Aff3.Aff2.Aff1 = 0, target list = CPU 0
    msr ICC_SGI1R_EL1, x25
    isb
.endm
"""

GICV2_MACROS = r"""
.macro gic_private_base reg
.endm
.macro gic_init
    ldr x24, =GICD_BASE
    mov w25, #1
    str w25, [x24, #GICD_CTLR]
    ldr x24, =GICC_BASE
    mov w25, #0xf0
    str w25, [x24, #GICC_PMR]
    mov w25, #1
    str w25, [x24, #GICC_CTLR]
.endm
.macro gic_pmr reg
    ldr x24, =GICC_BASE
    mov x26, \reg
    str w26, [x24, #GICC_PMR]
.endm
.macro gic_ack reg
    ldr x24, =GICC_BASE
    ldr w26, [x24, #GICC_IAR]
    mov \reg, x26
.endm
.macro gic_eoi reg
    ldr x24, =GICC_BASE
    mov x26, \reg
    str w26, [x24, #GICC_EOIR]
.endm
.macro gic_rpr reg
    ldr x24, =GICC_BASE
    ldr w26, [x24, #GICC_RPR]
    mov \reg, x26
.endm
.macro gic_sgi_self intid
    ldr x24, =GICD_BASE
    ldr w25, =((2 << 24) | \intid)     // TargetListFilter = this CPU only
    str w25, [x24, #GICD_SGIR]
.endm
"""


def gic_macros(version: int) -> str:
    specific = GICV3_MACROS if version == 3 else GICV2_MACROS
    return _common_constants() + specific + _DISTRIBUTOR_MACROS

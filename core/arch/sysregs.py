"""AArch64 system-register encodings (op0, op1, CRn, CRm, op2) and the bits petard uses.

Names are those of the Arm ARM. `SYSREG_NAMES` maps an encoding back to its name (for logs).
"""

from typing import NamedTuple


class SysReg(NamedTuple):
    op0: int
    op1: int
    crn: int
    crm: int
    op2: int


# Identification / control.
MIDR_EL1 = SysReg(3, 0, 0, 0, 0)
MPIDR_EL1 = SysReg(3, 0, 0, 0, 5)
CSSELR_EL1 = SysReg(3, 2, 0, 0, 0)
SCTLR_EL1 = SysReg(3, 0, 1, 0, 0)
CPACR_EL1 = SysReg(3, 0, 1, 0, 2)
TTBR0_EL1 = SysReg(3, 0, 2, 0, 0)
TTBR1_EL1 = SysReg(3, 0, 2, 0, 1)
TCR_EL1 = SysReg(3, 0, 2, 0, 2)
SPSR_EL1 = SysReg(3, 0, 4, 0, 0)
ELR_EL1 = SysReg(3, 0, 4, 0, 1)
SP_EL0 = SysReg(3, 0, 4, 1, 0)
AFSR0_EL1 = SysReg(3, 0, 5, 1, 0)
AFSR1_EL1 = SysReg(3, 0, 5, 1, 1)
ESR_EL1 = SysReg(3, 0, 5, 2, 0)
FAR_EL1 = SysReg(3, 0, 6, 0, 0)
PAR_EL1 = SysReg(3, 0, 7, 4, 0)
MAIR_EL1 = SysReg(3, 0, 10, 2, 0)
AMAIR_EL1 = SysReg(3, 0, 10, 3, 0)
VBAR_EL1 = SysReg(3, 0, 12, 0, 0)
CONTEXTIDR_EL1 = SysReg(3, 0, 13, 0, 1)
TPIDR_EL1 = SysReg(3, 0, 13, 0, 4)
TPIDR_EL0 = SysReg(3, 3, 13, 0, 2)
TPIDRRO_EL0 = SysReg(3, 3, 13, 0, 3)
CNTKCTL_EL1 = SysReg(3, 0, 14, 1, 0)
MDSCR_EL1 = SysReg(2, 0, 0, 2, 2)
DAIF = SysReg(3, 3, 4, 2, 1)

# Higher exception levels (written by the VMM, playing firmware, before boot).
VMPIDR_EL2 = SysReg(3, 4, 0, 0, 5)
HCR_EL2 = SysReg(3, 4, 1, 1, 0)
SP_EL1 = SysReg(3, 4, 4, 1, 0)
CNTHCTL_EL2 = SysReg(3, 4, 14, 1, 0)
CNTVOFF_EL2 = SysReg(3, 4, 14, 0, 3)
SCR_EL3 = SysReg(3, 6, 1, 1, 0)

# Generic timer.
CNTFRQ_EL0 = SysReg(3, 3, 14, 0, 0)
CNTPCT_EL0 = SysReg(3, 3, 14, 0, 1)
CNTVCT_EL0 = SysReg(3, 3, 14, 0, 2)
CNTP_TVAL_EL0 = SysReg(3, 3, 14, 2, 0)
CNTP_CTL_EL0 = SysReg(3, 3, 14, 2, 1)
CNTP_CVAL_EL0 = SysReg(3, 3, 14, 2, 2)
CNTV_TVAL_EL0 = SysReg(3, 3, 14, 3, 0)
CNTV_CTL_EL0 = SysReg(3, 3, 14, 3, 1)
CNTV_CVAL_EL0 = SysReg(3, 3, 14, 3, 2)

# GICv3 CPU interface (ICC_*).
ICC_PMR_EL1 = SysReg(3, 0, 4, 6, 0)
ICC_IAR0_EL1 = SysReg(3, 0, 12, 8, 0)
ICC_EOIR0_EL1 = SysReg(3, 0, 12, 8, 1)
ICC_HPPIR0_EL1 = SysReg(3, 0, 12, 8, 2)
ICC_BPR0_EL1 = SysReg(3, 0, 12, 8, 3)
ICC_AP0R0_EL1 = SysReg(3, 0, 12, 8, 4)
ICC_AP1R0_EL1 = SysReg(3, 0, 12, 9, 0)
ICC_DIR_EL1 = SysReg(3, 0, 12, 11, 1)
ICC_RPR_EL1 = SysReg(3, 0, 12, 11, 3)
ICC_SGI1R_EL1 = SysReg(3, 0, 12, 11, 5)
ICC_ASGI1R_EL1 = SysReg(3, 0, 12, 11, 6)
ICC_SGI0R_EL1 = SysReg(3, 0, 12, 11, 7)
ICC_IAR1_EL1 = SysReg(3, 0, 12, 12, 0)
ICC_EOIR1_EL1 = SysReg(3, 0, 12, 12, 1)
ICC_HPPIR1_EL1 = SysReg(3, 0, 12, 12, 2)
ICC_BPR1_EL1 = SysReg(3, 0, 12, 12, 3)
ICC_CTLR_EL1 = SysReg(3, 0, 12, 12, 4)
ICC_SRE_EL1 = SysReg(3, 0, 12, 12, 5)
ICC_IGRPEN0_EL1 = SysReg(3, 0, 12, 12, 6)
ICC_IGRPEN1_EL1 = SysReg(3, 0, 12, 12, 7)

# Cache maintenance (SYS instructions, op0 = 1).
IC_IALLUIS = SysReg(1, 0, 7, 1, 0)
IC_IALLU = SysReg(1, 0, 7, 5, 0)
IC_IVAU = SysReg(1, 3, 7, 5, 1)
DC_ZVA = SysReg(1, 3, 7, 4, 1)

SYSREG_NAMES = {value: name for name, value in list(globals().items())
                if isinstance(value, SysReg)}

# The EL1 context a guest kernel keeps in system registers, besides the ones a vCPU's state
# names on their own (SP_EL0/SP_EL1, ELR_EL1, SPSR_EL1, the timer): what saving and restoring
# a vCPU carries, on every backend, by these names.
CONTEXT_REGISTERS = {name: globals()[name] for name in (
    "SCTLR_EL1", "CPACR_EL1", "TTBR0_EL1", "TTBR1_EL1", "TCR_EL1", "ESR_EL1", "FAR_EL1",
    "AFSR0_EL1", "AFSR1_EL1", "PAR_EL1", "MAIR_EL1", "AMAIR_EL1", "VBAR_EL1", "CONTEXTIDR_EL1",
    "TPIDR_EL1", "TPIDR_EL0", "TPIDRRO_EL0", "CNTKCTL_EL1", "CSSELR_EL1", "MDSCR_EL1")}


def sysreg_name(reg: SysReg) -> str:
    return SYSREG_NAMES.get(reg, "S{}_{}_C{}_C{}_{}".format(*reg))


# --- register bits ---------------------------------------------------------------

SCR_EL3_NS = 1 << 0         # EL1/EL0 are non-secure
SCR_EL3_HCE = 1 << 8        # HVC enabled
SCR_EL3_RW = 1 << 10        # lower levels are AArch64

HCR_EL2_TDZ = 1 << 28       # trap DC ZVA: makes DCZID_EL0.DZP read 1 (guest avoids DC ZVA)
HCR_EL2_RW = 1 << 31        # EL1 is AArch64

CNTHCTL_EL2_EL1PCTEN = 1 << 0   # EL1/EL0 may read the physical counter
CNTHCTL_EL2_EL1PCEN = 1 << 1    # EL1/EL0 may use the physical timer

# CNTx_CTL_EL0.
CNT_CTL_ENABLE = 1 << 0
CNT_CTL_IMASK = 1 << 1
CNT_CTL_ISTATUS = 1 << 2

SCTLR_EL1_M = 1 << 0        # MMU enable
SCTLR_EL1_A = 1 << 1        # alignment check
SCTLR_EL1_SA = 1 << 3       # SP alignment check
# Architectural reset value the Unicorn A57 model shows (MMU off); used for CPU_ON.
SCTLR_EL1_RESET = 0x00C5_0838

MPIDR_EL1_RES1 = 1 << 31    # bit 31 of MPIDR_EL1 reads as one
MPIDR_AFF0_MASK = 0xFF
MPIDR_AFFINITY_MASK = 0xFF_00FF_FFFF    # Aff3 [39:32], Aff2..Aff0 [23:0]: what names a CPU

_ICC_EL1_CRM = (8, 9, 11, 12)     # CRn 12 groups holding ICC_*_EL1 (CRm 0/1 are VBAR/ISR)


def is_icc_el1_register(reg: tuple) -> bool:
    """True for the GICv3 CPU-interface registers accessible at EL1 (ICC_*_EL1)."""
    op0, op1, crn, crm, _op2 = reg
    return op0 == 3 and op1 == 0 and ((crn == 12 and crm in _ICC_EL1_CRM)
                                      or tuple(reg) == tuple(ICC_PMR_EL1))

# TLB maintenance broadcast to the Inner Shareable domain (TLBI ...IS: op0=1, op1=0, CRn=8, CRm=3).
_TLBI_IS = (1, 0, 8, 3)


def is_broadcast_tlbi(reg: tuple) -> bool:
    return tuple(reg[:4]) == _TLBI_IS

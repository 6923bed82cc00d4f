"""A64 instruction encodings the VMM recognises or emits (Arm ARM C6).

Only what petard needs: decoding trapped MSR/MRS, spotting WFI and interrupt unmasking
when learning the guest's idle loop, encoding the self-test's SVC/HVC, and the branch
offsets used to find spin-wait loops.
"""

from typing import NamedTuple

from .sysregs import SysReg

INSN_SIZE = 4
WFI = 0xD503_207F
WFE = 0xD503_205F
YIELD = 0xD503_203F
NOP = 0xD503_201F

# MSR (register) / MRS: 1101 0101 00 L 1 o0 op1 CRn CRm op2 Rt
_SYSREG_ACCESS_MASK = 0xFFD0_0000
_SYSREG_ACCESS_VALUE = 0xD510_0000
_SYSREG_ACCESS_READ = 1 << 21

# MSR DAIFClr/DAIFSet, #imm4: imm4 in bits [11:8].
_MSR_DAIF_IMM_MASK = 0xFFFF_F0FF
MSR_DAIFCLR_BASE = 0xD503_40FF
MSR_DAIFSET_BASE = 0xD503_40DF
DAIF_IMM_I = 1 << 1         # the I bit inside imm4 (D=8, A=4, I=2, F=1)

# RET {Xn}: 1101 0110 0101 1111 0000 00 Rn 00000
_RET_MASK = 0xFFFF_FC1F
_RET_VALUE = 0xD65F_0000

_SVC_BASE = 0xD400_0001
_HVC_BASE = 0xD400_0002
_EXCEPTION_IMM_SHIFT = 5

ZERO_REGISTER = 31          # Rt = 31 means xzr in MSR/MRS


class SysRegAccess(NamedTuple):
    reg: SysReg
    is_read: bool           # MRS
    rt: int


def decode_sysreg_access(insn: int) -> SysRegAccess | None:
    """Decode an MSR (register) / MRS instruction, or return None."""
    if insn & _SYSREG_ACCESS_MASK != _SYSREG_ACCESS_VALUE:
        return None
    reg = SysReg(2 + ((insn >> 19) & 1), (insn >> 16) & 7, (insn >> 12) & 0xF,
                 (insn >> 8) & 0xF, (insn >> 5) & 7)
    return SysRegAccess(reg, bool(insn & _SYSREG_ACCESS_READ), insn & 0x1F)


def is_msr_daifclr(insn: int) -> bool:
    return insn & _MSR_DAIF_IMM_MASK == MSR_DAIFCLR_BASE


def daif_imm(insn: int) -> int:
    return (insn >> 8) & 0xF


def is_ret(insn: int) -> bool:
    return insn & _RET_MASK == _RET_VALUE


def encode_svc(imm16: int) -> int:
    return _SVC_BASE | ((imm16 & 0xFFFF) << _EXCEPTION_IMM_SHIFT)


def encode_hvc(imm16: int) -> int:
    return _HVC_BASE | ((imm16 & 0xFFFF) << _EXCEPTION_IMM_SHIFT)


def encode_str_x_unsigned_offset(rt: int, rn: int) -> int:
    """STR Xt, [Xn] (64-bit store, unsigned immediate offset 0)."""
    return 0xF900_0000 | (rn << 5) | rt


# Immediate branches: (mask, value, offset field shift, offset field bits).
_BRANCHES = (
    (0xFC00_0000, 0x1400_0000, 0, 26),     # B (not BL)
    (0xFF00_0010, 0x5400_0000, 5, 19),     # B.cond
    (0x7E00_0000, 0x3400_0000, 5, 19),     # CBZ / CBNZ
    (0x7E00_0000, 0x3600_0000, 5, 14),     # TBZ / TBNZ
)


_BL_MASK = 0xFC00_0000
_BL_VALUE = 0x9400_0000


def is_bl(insn: int) -> bool:
    return insn & _BL_MASK == _BL_VALUE


def branch_offset(insn: int) -> int | None:
    """Byte offset of an immediate B, B.cond, CB(N)Z or TB(N)Z; None for anything else."""
    for mask, value, shift, bits in _BRANCHES:
        if insn & mask == value:
            field = (insn >> shift) & ((1 << bits) - 1)
            if field >> (bits - 1):
                field -= 1 << bits
            return field * INSN_SIZE
    return None

"""PSTATE (SPSR layout) bits and exception-level/stack-pointer modes of AArch64.

Names follow the Arm ARM (SPSR_ELx, "M[3:0]" mode field).
"""

# Condition flags.
PSTATE_N = 1 << 31
PSTATE_Z = 1 << 30
PSTATE_C = 1 << 29
PSTATE_V = 1 << 28

# Exception mask bits (DAIF).
PSTATE_D = 1 << 9
PSTATE_A = 1 << 8
PSTATE_I = 1 << 7
PSTATE_F = 1 << 6
PSTATE_DAIF_MASK = PSTATE_D | PSTATE_A | PSTATE_I | PSTATE_F

# M[4]: 0 = AArch64 state.
PSTATE_nRW = 1 << 4

# M[3:0]: exception level and stack pointer selection.
PSTATE_MODE_MASK = 0xF
MODE_EL0t = 0x0
MODE_EL1t = 0x4
MODE_EL1h = 0x5
MODE_EL2t = 0x8
MODE_EL2h = 0x9
PSTATE_EL_SHIFT = 2
PSTATE_SP = 1 << 0          # M[0]: SP_ELx (h) rather than SP_EL0 (t)

# Every vCPU starts like this (Firecracker/KVM: EL1h with D, A, I, F masked).
BOOT_PSTATE = PSTATE_DAIF_MASK | MODE_EL1h
assert BOOT_PSTATE == 0x3C5


def exception_level(pstate: int) -> int:
    """The exception level encoded in M[3:2]."""
    return (pstate >> PSTATE_EL_SHIFT) & 0x3


def irqs_masked(pstate: int) -> bool:
    return bool(pstate & PSTATE_I)

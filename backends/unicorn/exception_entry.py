"""Taking an exception to EL1 the way the CPU would, for exceptions Unicorn does not deliver.

Writes SPSR_EL1/ELR_EL1 (and ESR_EL1/FAR_EL1 for synchronous exceptions), switches the stack
pointer bank, masks DAIF, enters EL1h and branches to VBAR_EL1 + the vector offset. Valid for
the A57 model (ARMv8.0: no PAN, no BTI, no pointer authentication to model).
"""

import enum
from functools import lru_cache

from unicorn import Uc
from unicorn import arm64_const as uc_arm64

from petard.core.arch import pstate as ps
from petard.core.arch import sysregs

from . import cpu


class ExceptionKind(enum.IntEnum):
    """Offset of the vector inside each group of four (Arm ARM D1.10.2)."""
    SYNCHRONOUS = 0x000
    IRQ = 0x080
    FIQ = 0x100
    SERROR = 0x180


# Vector group by where the exception comes from.
_FROM_CURRENT_EL_SP0 = 0x000
_FROM_CURRENT_EL_SPX = 0x200
_FROM_LOWER_EL_AARCH64 = 0x400

_ENTRY_PSTATE = ps.PSTATE_DAIF_MASK | ps.MODE_EL1h
_SP_EL0 = uc_arm64.UC_ARM64_REG_SP_EL0
_SP_EL1 = uc_arm64.UC_ARM64_REG_SP_EL1
_ELR_EL1 = uc_arm64.UC_ARM64_REG_ELR_EL1
_ESR_EL1 = uc_arm64.UC_ARM64_REG_ESR_EL1
_FAR_EL1 = uc_arm64.UC_ARM64_REG_FAR_EL1
_VBAR_EL1 = uc_arm64.UC_ARM64_REG_VBAR_EL1


class UnsupportedExceptionSource(Exception):
    pass


# Read before entry: PSTATE, the live SP, VBAR_EL1, SP_EL1 (the handler's stack when coming
# from SP_EL0) and TPIDR_EL1 (rewritten unchanged after PSTATE, which makes Unicorn recompute
# its cached CPU flags: see cpu.rebuild_cached_flags).
_BEFORE = cpu.RegisterBatch([cpu.PSTATE, cpu.SP, _VBAR_EL1, _SP_EL1, sysregs.TPIDR_EL1])


@lru_cache(maxsize=None)
def _entry_writes(has_syndrome: bool, has_fault_address: bool, from_sp0: bool) -> cpu.RegisterBatch:
    """The registers entry writes, in order, for one combination of what it has to write."""
    registers = [sysregs.SPSR_EL1, _ELR_EL1]
    registers += [_ESR_EL1] if has_syndrome else []
    registers += [_FAR_EL1] if has_fault_address else []
    registers += [_SP_EL0] if from_sp0 else []          # the live SP was SP_EL0: bank it
    registers += [cpu.PSTATE, cpu.SP, sysregs.TPIDR_EL1, cpu.PC]
    return cpu.RegisterBatch(registers)


def enter_exception(uc: Uc, kind: ExceptionKind, return_address: int,
                    syndrome: int | None = None, fault_address: int | None = None) -> int:
    """Enter the guest's EL1 vector for `kind`; returns the new PC."""
    old_pstate, sp, vbar, sp_el1, tpidr = _BEFORE.read(uc)
    mode = old_pstate & ps.PSTATE_MODE_MASK
    if old_pstate & ps.PSTATE_nRW or mode not in (ps.MODE_EL0t, ps.MODE_EL1t, ps.MODE_EL1h):
        raise UnsupportedExceptionSource(f"exception from unsupported PSTATE {old_pstate:#x}")
    from_sp0 = mode != ps.MODE_EL1h
    if from_sp0:
        # The live SP is SP_EL0 (EL0t or EL1t); the handler runs on SP_EL1.
        vector = vbar + (_FROM_LOWER_EL_AARCH64 if mode == ps.MODE_EL0t
                         else _FROM_CURRENT_EL_SP0) + kind
        new_sp = sp_el1
    else:
        vector = vbar + _FROM_CURRENT_EL_SPX + kind
        new_sp = sp
    values = [old_pstate, return_address]
    values += [syndrome] if syndrome is not None else []
    values += [fault_address] if fault_address is not None else []
    values += [sp] if from_sp0 else []
    values += [_ENTRY_PSTATE, new_sp, tpidr, vector]
    _entry_writes(syndrome is not None, fault_address is not None, from_sp0).write(uc, values)
    return vector

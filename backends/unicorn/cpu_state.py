"""A vCPU's registers in core's neutral terms (`VcpuState`), read from the engine that holds
them and written back.

Unicorn (QEMU) keeps the live stack pointer in one place and the other exception level's in
its bank: at EL1h the live SP is SP_EL1 and SP_EL0 is banked, at EL0 and EL1t the other way
round (QEMU refreshes a bank only when the mode changes, so the live one is never read from
its bank). Writing PSTATE first selects where a later SP write goes. The timer fields come
from the emulated timer (timer.py), not from the engine.
"""

from __future__ import annotations

from unicorn import Uc
from unicorn import arm64_const as uc_arm64

from petard.core.arch import pstate as ps
from petard.core.arch.sysregs import CONTEXT_REGISTERS, ELR_EL1, SPSR_EL1
from petard.core.vcpu_state import GENERAL_REGISTER_COUNT, VECTOR_REGISTER_COUNT, VcpuState

from . import cpu

_SP_EL0 = uc_arm64.UC_ARM64_REG_SP_EL0
_SP_EL1 = uc_arm64.UC_ARM64_REG_SP_EL1
_VECTOR_REGISTERS = [uc_arm64.UC_ARM64_REG_V0 + number for number in range(VECTOR_REGISTER_COUNT)]
_SYSTEM_NAMES = list(CONTEXT_REGISTERS)

# One batch for every 64-bit register: x0..x30, the live SP, both banks, PC, PSTATE, then
# ELR/SPSR, FPSR/FPCR and the context system registers.
_SCALARS = [cpu.PC, cpu.PSTATE, cpu.SP, _SP_EL0, _SP_EL1, ELR_EL1, SPSR_EL1,
            uc_arm64.UC_ARM64_REG_FPSR, uc_arm64.UC_ARM64_REG_FPCR]
_READ = cpu.RegisterBatch(cpu.X_REGISTERS + _SCALARS + [CONTEXT_REGISTERS[name] for name in _SYSTEM_NAMES])


def _sp_el1_is_live(pstate: int) -> bool:
    return bool(pstate & ps.PSTATE_SP) and ps.exception_level(pstate) == 1


def read_registers(uc: Uc, state: VcpuState) -> None:
    """Fill `state`'s registers (all but mpidr, powered_on and the timer) from `uc`."""
    values = _READ.read(uc)
    state.x = values[:GENERAL_REGISTER_COUNT]
    pc, pstate, live_sp, sp_el0, sp_el1, elr, spsr, fpsr, fpcr = values[GENERAL_REGISTER_COUNT:
                                                                        GENERAL_REGISTER_COUNT + len(_SCALARS)]
    if _sp_el1_is_live(pstate):
        sp_el1 = live_sp
    else:
        sp_el0 = live_sp
    state.pc, state.pstate, state.sp_el0, state.sp_el1 = pc, pstate, sp_el0, sp_el1
    state.elr_el1, state.spsr_el1, state.fpsr, state.fpcr = elr, spsr, fpsr, fpcr
    state.system_registers = dict(zip(_SYSTEM_NAMES, values[GENERAL_REGISTER_COUNT + len(_SCALARS):]))
    state.v = [uc.reg_read(reg) for reg in _VECTOR_REGISTERS]


_WRITE = cpu.RegisterBatch([cpu.PSTATE, cpu.SP, _SP_EL0, _SP_EL1, ELR_EL1, SPSR_EL1,
                            uc_arm64.UC_ARM64_REG_FPSR, uc_arm64.UC_ARM64_REG_FPCR]
                           + cpu.X_REGISTERS + [CONTEXT_REGISTERS[name] for name in _SYSTEM_NAMES]
                           + [cpu.PC])


def write_registers(uc: Uc, state: VcpuState) -> None:
    """Load `state`'s registers into `uc` (PSTATE first: it selects the live SP)."""
    live_sp = state.sp_el1 if _sp_el1_is_live(state.pstate) else state.sp_el0
    _WRITE.write(uc, [state.pstate, live_sp, state.sp_el0, state.sp_el1, state.elr_el1, state.spsr_el1,
                      state.fpsr, state.fpcr, *state.x,
                      *[state.system_registers[name] for name in _SYSTEM_NAMES], state.pc])
    for reg, value in zip(_VECTOR_REGISTERS, state.v):
        uc.reg_write(reg, value)
    cpu.rebuild_cached_flags(uc)

"""A KVM vCPU's registers as core's neutral `VcpuState`, read with KVM_GET_ONE_REG and
written back with KVM_SET_ONE_REG.

KVM names the stack pointers apart already (`regs.sp` is SP_EL0, `sp_el1` its own core
register), keeps SPSR_EL1 in `spsr[0]`, the FP/SIMD state in `fp_regs`, and the EL1 system
registers under their op0:op1:CRn:CRm:op2 encodings. The virtual timer is three registers
of its own: writing its count (KVM_REG_ARM_TIMER_CNT) sets the VM's counter offset, so a
restored guest's virtual counter goes on from the saved count. PSCI power is the vCPU's
MP state (STOPPED is off).
"""

from __future__ import annotations

import errno

from petard.core.arch import sysregs
from petard.core.vcpu_state import GENERAL_REGISTER_COUNT, VECTOR_REGISTER_COUNT, TimerState, VcpuState

from . import kvm_abi as abi
from .ioctls import KvmVcpuFd

_X = [abi.core_register_x(n) for n in range(GENERAL_REGISTER_COUNT)]
_V = [abi.core_register_v(n) for n in range(VECTOR_REGISTER_COUNT)]
_SCALARS = {"sp_el0": abi.REG_SP, "sp_el1": abi.REG_SP_EL1, "pc": abi.REG_PC, "pstate": abi.REG_PSTATE,
            "elr_el1": abi.REG_ELR_EL1, "spsr_el1": abi.REG_SPSR_EL1, "fpsr": abi.REG_FPSR, "fpcr": abi.REG_FPCR}
_SYSTEM = {name: abi.ARM64_SYS_REG(*reg) for name, reg in sysregs.CONTEXT_REGISTERS.items()}
_TIMER_CONTROL_BITS = sysregs.CNT_CTL_ENABLE | sysregs.CNT_CTL_IMASK


def _get_or_zero(fd: KvmVcpuFd, reg_id: int) -> int:
    """A register this host's KVM may not expose (ENOENT) reads as zero."""
    try:
        return fd.get_one_reg(reg_id)
    except OSError as error:
        if error.errno != errno.ENOENT:
            raise
        return 0


def _set_if_known(fd: KvmVcpuFd, reg_id: int, value: int) -> None:
    try:
        fd.set_one_reg(reg_id, value)
    except OSError as error:
        if error.errno != errno.ENOENT:
            raise


def read_vcpu_state(fd: KvmVcpuFd) -> VcpuState:
    get = fd.get_one_reg
    state = VcpuState(mpidr=get(abi.REG_MPIDR_EL1) & sysregs.MPIDR_AFFINITY_MASK,
                      powered_on=fd.get_mp_state() != abi.KVM_MP_STATE_STOPPED,
                      x=[get(reg) for reg in _X], v=[get(reg) for reg in _V])
    for name, reg in _SCALARS.items():
        setattr(state, name, get(reg))
    state.system_registers = {name: _get_or_zero(fd, reg) for name, reg in _SYSTEM.items()}
    state.timer = TimerState(virtual_ctl=get(abi.KVM_REG_ARM_TIMER_CTL) & _TIMER_CONTROL_BITS,
                             virtual_cval=get(abi.KVM_REG_ARM_TIMER_CVAL),
                             physical_ctl=_get_or_zero(fd, abi.KVM_REG_ARM_PTIMER_CTL) & _TIMER_CONTROL_BITS,
                             physical_cval=_get_or_zero(fd, abi.KVM_REG_ARM_PTIMER_CVAL),
                             virtual_count=get(abi.KVM_REG_ARM_TIMER_CNT))
    return state


def write_vcpu_state(fd: KvmVcpuFd, state: VcpuState) -> None:
    """Load `state` into a vCPU that has not run (after KVM_ARM_VCPU_INIT)."""
    put = fd.set_one_reg
    for reg, value in zip(_X, state.x):
        put(reg, value)
    for reg, value in zip(_V, state.v):
        put(reg, value)
    for name, reg in _SCALARS.items():
        put(reg, getattr(state, name))
    for name, reg in _SYSTEM.items():
        _set_if_known(fd, reg, state.system_registers.get(name, 0))
    timer = state.timer
    put(abi.KVM_REG_ARM_TIMER_CNT, timer.virtual_count)
    put(abi.KVM_REG_ARM_TIMER_CVAL, timer.virtual_cval)
    put(abi.KVM_REG_ARM_TIMER_CTL, timer.virtual_ctl & _TIMER_CONTROL_BITS)
    _set_if_known(fd, abi.KVM_REG_ARM_PTIMER_CVAL, timer.physical_cval)
    _set_if_known(fd, abi.KVM_REG_ARM_PTIMER_CTL, timer.physical_ctl & _TIMER_CONTROL_BITS)
    fd.set_mp_state(abi.KVM_MP_STATE_RUNNABLE if state.powered_on else abi.KVM_MP_STATE_STOPPED)

"""Creating and configuring one Unicorn engine as an arm64 vCPU (Cortex-A57 model).

Unicorn starts the CPU at EL1 with EL2/EL3 present but unconfigured; the VMM plays the
firmware's part by writing SCR_EL3/HCR_EL2/CNTHCTL_EL2/VMPIDR_EL2 directly. Also the
register-access helpers every other module uses (system registers by `SysReg`). They call
libunicorn directly for 64-bit registers: the binding's generic reg_read/reg_write pick a
register class per call and cost several microseconds, and the vCPU loop and its hooks do
tens of thousands of accesses per boot.
"""

import ctypes

from unicorn import UC_ARCH_ARM64, UC_MODE_ARM, Uc, UcError
from unicorn import arm64_const as uc_arm64
from unicorn.unicorn_py3 import unicorn as _binding

from petard.core.arch import sysregs
from petard.core.arch.sysregs import SysReg

CPU_MODEL = uc_arm64.UC_CPU_ARM64_A57

# Firmware-level set-up written before boot (see docs in unicorn-on-arm64 notes):
# non-secure AArch64 EL1 with HVC enabled, EL2 with AArch64 EL1 and DC ZVA trapped (so Linux
# uses plain stores: much faster under Unicorn), counters and physical timer open to EL1.
SCR_EL3_BOOT = sysregs.SCR_EL3_RW | sysregs.SCR_EL3_HCE | sysregs.SCR_EL3_NS
HCR_EL2_BOOT = sysregs.HCR_EL2_RW | sysregs.HCR_EL2_TDZ
CNTHCTL_EL2_BOOT = sysregs.CNTHCTL_EL2_EL1PCTEN | sysregs.CNTHCTL_EL2_EL1PCEN

X_REGISTERS = [getattr(uc_arm64, f"UC_ARM64_REG_X{n}") for n in range(31)]
PC = uc_arm64.UC_ARM64_REG_PC
SP = uc_arm64.UC_ARM64_REG_SP
PSTATE = uc_arm64.UC_ARM64_REG_PSTATE
_CP_REG = uc_arm64.UC_ARM64_REG_CP_REG


def create_engine() -> Uc:
    """A fresh Unicorn aarch64 engine with the A57 model (must be chosen before any mapping)."""
    uc = Uc(UC_ARCH_ARM64, UC_MODE_ARM)
    uc.ctl_set_cpu_model(CPU_MODEL)
    return uc


class CpRegister(ctypes.Structure):
    """uc_arm64_cp_reg: a system register for UC_ARM64_REG_CP_REG accesses and SYS hooks."""

    _fields_ = [("crn", ctypes.c_uint32), ("crm", ctypes.c_uint32), ("op0", ctypes.c_uint32),
                ("op1", ctypes.c_uint32), ("op2", ctypes.c_uint32), ("val", ctypes.c_uint64)]


_uc_reg_read = _binding.uclib.uc_reg_read
_uc_reg_write = _binding.uclib.uc_reg_write
_uc_reg_read_batch = _binding.uclib.uc_reg_read_batch
_uc_reg_write_batch = _binding.uclib.uc_reg_write_batch
_PC_ONLY = (ctypes.c_int * 1)(PC)


def read_reg(uc: Uc, reg: int) -> int:
    """A 64-bit register (X_REGISTERS, PC, SP, PSTATE...)."""
    value = ctypes.c_uint64()
    status = _uc_reg_read(uc._uch, reg, ctypes.byref(value))
    if status:
        raise UcError(status, reg)
    return value.value


def write_reg(uc: Uc, reg: int, value: int) -> None:
    if reg == PC:
        _write_pc(uc, value)
        return
    status = _uc_reg_write(uc._uch, reg, ctypes.byref(ctypes.c_uint64(value)))
    if status:
        raise UcError(status, reg)


def _write_pc(uc: Uc, value: int) -> None:
    """PC goes through the batch call: the single-register call also marks the next stop
    "keep PC as written", which the wheel's libunicorn never clears once emulation has
    resumed from that PC, so a stop much later resumes at a stale PC (libunicorn_build.py).
    The batch call leaves no such mark."""
    written = ctypes.c_uint64(value)
    status = _uc_reg_write_batch(uc._uch, _PC_ONLY, (ctypes.c_void_p * 1)(ctypes.addressof(written)), 1)
    if status:
        raise UcError(status, PC)


def read_sysreg(uc: Uc, reg: SysReg) -> int:
    access = CpRegister(reg.crn, reg.crm, reg.op0, reg.op1, reg.op2, 0)
    status = _uc_reg_read(uc._uch, _CP_REG, ctypes.byref(access))
    if status:
        raise UcError(status, _CP_REG)
    return access.val


def write_sysreg(uc: Uc, reg: SysReg, value: int) -> None:
    """Raw write of a system register (Unicorn then recomputes its cached CPU flags)."""
    access = CpRegister(reg.crn, reg.crm, reg.op0, reg.op1, reg.op2, value)
    status = _uc_reg_write(uc._uch, _CP_REG, ctypes.byref(access))
    if status:
        raise UcError(status, _CP_REG)


class RegisterBatch:
    """A fixed list of registers (ids like PC, or `SysReg`s) read or written with one
    libunicorn call: the binding's reg_read_batch/reg_write_batch cost 10-14 us for three
    registers, this ~1 us plus ~0.1 us per register."""

    def __init__(self, registers: list):
        count = len(registers)
        self._count = count
        self._ids = (ctypes.c_int * count)(*[_CP_REG if isinstance(reg, SysReg) else reg
                                              for reg in registers])
        self._values = (ctypes.c_uint64 * count)()
        self._system = {index: CpRegister(reg.crn, reg.crm, reg.op0, reg.op1, reg.op2, 0)
                        for index, reg in enumerate(registers) if isinstance(reg, SysReg)}
        base = ctypes.addressof(self._values)
        self._pointers = (ctypes.c_void_p * count)(*[
            ctypes.addressof(self._system[index]) if index in self._system else base + 8 * index
            for index in range(count)])

    def read(self, uc: Uc) -> list[int]:
        status = _uc_reg_read_batch(uc._uch, self._ids, self._pointers, self._count)
        if status:
            raise UcError(status)
        values = list(self._values)
        for index, access in self._system.items():
            values[index] = access.val
        return values

    def write(self, uc: Uc, values) -> None:
        """Written in list order (a PSTATE write before SP's selects the SP it goes to)."""
        for index, value in enumerate(values):
            access = self._system.get(index)
            if access is None:
                self._values[index] = value
            else:
                access.val = value
        status = _uc_reg_write_batch(uc._uch, self._ids, self._pointers, self._count)
        if status:
            raise UcError(status)


def rebuild_cached_flags(uc: Uc) -> None:
    """Make Unicorn notice a PSTATE change (EL, SP selection, masks).

    A PSTATE write alone does not recompute QEMU's cached translation flags, but every
    system-register write does; rewriting TPIDR_EL1 with its own value is harmless.
    """
    write_sysreg(uc, sysregs.TPIDR_EL1, read_sysreg(uc, sysregs.TPIDR_EL1))


def configure_firmware_state(uc: Uc, mpidr: int) -> None:
    write_sysreg(uc, sysregs.SCR_EL3, SCR_EL3_BOOT)
    write_sysreg(uc, sysregs.HCR_EL2, HCR_EL2_BOOT)
    write_sysreg(uc, sysregs.CNTHCTL_EL2, CNTHCTL_EL2_BOOT)
    # MPIDR_EL1 writes are ignored; non-secure EL1 reads VMPIDR_EL2 instead.
    write_sysreg(uc, sysregs.VMPIDR_EL2, sysregs.MPIDR_EL1_RES1 | mpidr)


def set_entry_state(uc: Uc, pc: int, pstate: int, x0: int = 0) -> None:
    """Registers of a vCPU entering the kernel (boot or PSCI CPU_ON): x0, all else zero."""
    for number, reg in enumerate(X_REGISTERS):
        write_reg(uc, reg, x0 if number == 0 else 0)
    write_reg(uc, PSTATE, pstate)
    write_reg(uc, PC, pc)
    rebuild_cached_flags(uc)

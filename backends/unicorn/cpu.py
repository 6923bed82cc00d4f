"""Creating and configuring one Unicorn engine as an arm64 vCPU (Cortex-A57 model).

Unicorn starts the CPU at EL1 with EL2/EL3 present but unconfigured; the VMM plays the
firmware's part by writing SCR_EL3/HCR_EL2/CNTHCTL_EL2/VMPIDR_EL2 directly. Also the
register-access helpers every other module uses (system registers by `SysReg`).
"""

from unicorn import UC_ARCH_ARM64, UC_MODE_ARM, Uc
from unicorn import arm64_const as uc_arm64

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


def read_sysreg(uc: Uc, reg: SysReg) -> int:
    return uc.reg_read(_CP_REG, (reg.crn, reg.crm, reg.op0, reg.op1, reg.op2))


def write_sysreg(uc: Uc, reg: SysReg, value: int) -> None:
    """Raw write of a system register (Unicorn then recomputes its cached CPU flags)."""
    uc.reg_write(_CP_REG, (reg.crn, reg.crm, reg.op0, reg.op1, reg.op2, value))


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
        uc.reg_write(reg, x0 if number == 0 else 0)
    uc.reg_write(PSTATE, pstate)
    uc.reg_write(PC, pc)
    rebuild_cached_flags(uc)


def general_registers(uc: Uc) -> dict[str, int]:
    """x0..x30, sp, pc and pstate by name (for dumps)."""
    values = uc.reg_read_batch(X_REGISTERS + [SP, PC, PSTATE])
    names = [f"x{n}" for n in range(31)] + ["sp", "pc", "pstate"]
    return dict(zip(names, values))

"""One vCPU's architectural state in terms that mean the same on every backend.

A backend fills a `VcpuState` from its own representation (KVM's register list, Unicorn's
CPU model) and loads one back; a state taken on one backend can be loaded on the other.
Every field is named as the Arm ARM names the register, holds what a guest at EL1 would read
from it, and says which stack pointer it is: `sp_el0` and `sp_el1` are both kept, whichever
of them is live (PSTATE.M says which, `live_sp` gives it).

The timer keeps the guest's view: its control and compare registers, and the virtual count
(CNTVCT_EL0) at the moment the state was taken. Loading a state makes the virtual counter go
on from that count, so the guest sees no time pass between save and restore, as on KVM
(where KVM_REG_ARM_TIMER_CNT works so).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from petard.core.arch import pstate as ps
from petard.core.arch.sysregs import CONTEXT_REGISTERS

GENERAL_REGISTER_COUNT = 31
VECTOR_REGISTER_COUNT = 32
_U64 = (1 << 64) - 1
_U128 = (1 << 128) - 1


@dataclass
class TimerState:
    """The EL1 view of a vCPU's generic timer."""

    virtual_ctl: int = 0        # CNTV_CTL_EL0: ENABLE and IMASK (ISTATUS follows from the rest)
    virtual_cval: int = 0       # CNTV_CVAL_EL0
    physical_ctl: int = 0       # CNTP_CTL_EL0
    physical_cval: int = 0      # CNTP_CVAL_EL0
    virtual_count: int = 0      # CNTVCT_EL0 when the state was taken


@dataclass
class VcpuState:
    mpidr: int                  # MPIDR_EL1 affinity (Aff3..Aff0), without its RES1 bit
    powered_on: bool            # PSCI: on (running or in WFI) or off
    x: list[int] = field(default_factory=lambda: [0] * GENERAL_REGISTER_COUNT)     # x0..x30
    sp_el0: int = 0
    sp_el1: int = 0
    pc: int = 0
    pstate: int = ps.BOOT_PSTATE
    elr_el1: int = 0
    spsr_el1: int = 0
    v: list[int] = field(default_factory=lambda: [0] * VECTOR_REGISTER_COUNT)      # v0..v31, 128-bit
    fpsr: int = 0
    fpcr: int = 0
    # sysregs.CONTEXT_REGISTERS by name (the Arm ARM's: "SCTLR_EL1", ...).
    system_registers: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CONTEXT_REGISTERS, 0))
    timer: TimerState = field(default_factory=TimerState)

    def __post_init__(self) -> None:
        if len(self.x) != GENERAL_REGISTER_COUNT or len(self.v) != VECTOR_REGISTER_COUNT:
            raise ValueError(f"a vCPU has {GENERAL_REGISTER_COUNT} general and "
                             f"{VECTOR_REGISTER_COUNT} vector registers")
        unknown = set(self.system_registers) - set(CONTEXT_REGISTERS)
        if unknown:
            raise ValueError(f"not a context register: {', '.join(sorted(unknown))}")

    @property
    def live_sp(self) -> int:
        """The stack pointer the vCPU uses now: SP_EL1 at EL1h, SP_EL0 at EL0 and EL1t."""
        return self.sp_el1 if self.pstate & ps.PSTATE_SP and ps.exception_level(self.pstate) == 1 else self.sp_el0

    def general_registers(self) -> dict[str, int]:
        """x0..x30, sp_el0, sp_el1, pc and pstate by name (what tests and reports compare)."""
        named = {f"x{number}": value for number, value in enumerate(self.x)}
        named.update(sp_el0=self.sp_el0, sp_el1=self.sp_el1, pc=self.pc, pstate=self.pstate)
        return named

    def report_registers(self) -> dict[str, int]:
        """What a fatal-error report shows: the general registers and the EL1 exception state."""
        named = self.general_registers()
        named.update(elr_el1=self.elr_el1, spsr_el1=self.spsr_el1)
        for name in ("ESR_EL1", "FAR_EL1", "VBAR_EL1", "SCTLR_EL1"):
            named[name.lower()] = self.system_registers.get(name, 0)
        return named

    # --- plain data (for state files) -----------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "timer"}
        data["x"], data["v"] = list(self.x), list(self.v)
        data["system_registers"] = dict(self.system_registers)
        data["timer"] = {f.name: getattr(self.timer, f.name) for f in fields(self.timer)}
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VcpuState:
        values = dict(data)
        values["timer"] = TimerState(**values.get("timer", {}))
        state = cls(**values)
        state.check_ranges()
        return state

    def check_ranges(self) -> None:
        """Every register fits its width (a state read from a file is checked so)."""
        wide = {"v": _U128}
        for name in ("x", "v"):
            for number, value in enumerate(getattr(self, name)):
                if not 0 <= value <= wide.get(name, _U64):
                    raise ValueError(f"{name}{number} = {value:#x} does not fit the register")
        for name in ("mpidr", "sp_el0", "sp_el1", "pc", "pstate", "elr_el1", "spsr_el1", "fpsr", "fpcr"):
            if not 0 <= getattr(self, name) <= _U64:
                raise ValueError(f"{name} = {getattr(self, name):#x} does not fit the register")
        for name, value in {**self.system_registers,
                            **{f"timer.{f.name}": getattr(self.timer, f.name) for f in fields(self.timer)}}.items():
            if not 0 <= value <= _U64:
                raise ValueError(f"{name} = {value:#x} does not fit the register")

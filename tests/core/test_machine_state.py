"""The backend-neutral machine state as plain data: names, widths, the live stack pointer,
round trips through dicts, and the check that a state fits a machine."""

from __future__ import annotations

import pytest

from petard.core.arch import pstate as ps
from petard.core.backend import BootRegisters, MachineDescription, MachineState, state_mismatch
from petard.core.gic_state import GicState
from petard.core.machine import gic_description, vcpu_mpidrs
from petard.core.memory import GuestMemory
from petard.core.mmio import MmioBus
from petard.core.vcpu_state import VcpuState


def sample_vcpu(mpidr: int = 0) -> VcpuState:
    state = VcpuState(mpidr=mpidr, powered_on=True, x=list(range(100, 131)), sp_el0=0x1000, sp_el1=0x2000,
                      pc=0xFFFF_8000_0800_0000, pstate=ps.MODE_EL1h | ps.PSTATE_DAIF_MASK, v=[1 << 127] * 32)
    state.system_registers["TTBR1_EL1"] = 0x4000_0000
    state.timer.virtual_count = 12345
    return state


def test_the_live_stack_pointer_follows_pstate_m():
    state = sample_vcpu()
    assert state.live_sp == 0x2000
    state.pstate = ps.MODE_EL1t
    assert state.live_sp == 0x1000
    state.pstate = ps.MODE_EL0t
    assert state.live_sp == 0x1000


def test_reports_name_both_stack_pointers_apart():
    registers = sample_vcpu().report_registers()
    assert registers["sp_el0"] == 0x1000 and registers["sp_el1"] == 0x2000
    assert "sp" not in registers
    assert {"x0", "x30", "pc", "pstate", "elr_el1", "spsr_el1", "esr_el1", "far_el1", "vbar_el1",
            "sctlr_el1"} <= set(registers)


def test_a_vcpu_state_goes_through_plain_data_unchanged():
    state = sample_vcpu(3)
    assert VcpuState.from_dict(state.to_dict()) == state


def test_plain_data_out_of_range_or_unknown_is_refused():
    data = sample_vcpu().to_dict()
    data["x"][5] = 1 << 64
    with pytest.raises(ValueError, match="x5"):
        VcpuState.from_dict(data)
    data = sample_vcpu().to_dict()
    data["system_registers"]["HCR_EL2"] = 0
    with pytest.raises(ValueError, match="HCR_EL2"):
        VcpuState.from_dict(data)
    with pytest.raises(ValueError, match="31 general"):
        VcpuState(mpidr=0, powered_on=True, x=[0] * 30)


def test_a_gic_state_goes_through_plain_data_unchanged():
    state = GicState.reset(3, 128, 2)
    state.spis[3].pending = True
    state.cpus[1].private[27].enabled = True
    state.cpus[0].active_priorities = [0xA0, 0x80]
    assert GicState.from_dict(state.to_dict()) == state
    assert state.irq(1, 27).enabled and state.irq(0, 35).pending


def machine(vcpus: int, gic: int) -> MachineDescription:
    return MachineDescription(memory=GuestMemory(0x8000_0000, 0x10_0000), mmio_bus=MmioBus(), vcpu_count=vcpus,
                              vcpu_mpidrs=vcpu_mpidrs(vcpus), gic=gic_description(gic, vcpus),
                              boot=BootRegisters(pc=0x8000_0000, x0=0, pstate=ps.BOOT_PSTATE))


def test_a_state_must_fit_the_machine():
    state = MachineState([sample_vcpu(0), sample_vcpu(1)], GicState.reset(3, 128, 2))
    assert state_mismatch(state, machine(2, 3)) is None
    assert "2 vCPUs were saved, the machine has 4" in state_mismatch(state, machine(4, 3))
    assert "a GICv3 with 128 interrupts" in state_mismatch(state, machine(2, 2))
    state.vcpus[1].mpidr = 7
    assert "vCPU 1 was saved with MPIDR 0x7" in state_mismatch(state, machine(2, 3))

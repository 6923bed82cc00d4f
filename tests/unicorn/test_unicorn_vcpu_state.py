"""The neutral `VcpuState` as the Unicorn backend reads and writes it: the register programs
of tests/kvm/guest_programs.py set known values (the same source and expectations the KVM
test uses, so both backends must agree on what each register means), and a state loaded
into a fresh VM reads back unchanged, both stack pointers in their place whichever is live.
"""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import pytest
from unicorn_harness import GuestRun

from petard.backends.unicorn.backend import UnicornBackend
from petard.core.vcpu_state import VcpuState

_PROGRAMS_FILE = Path(__file__).resolve().parent.parent / "kvm" / "guest_programs.py"
_spec = importlib.util.spec_from_file_location("kvm_guest_programs", _PROGRAMS_FILE)
guest_programs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(guest_programs)

READY_TIMEOUT_S = 10


def paused_register_program(el1t: bool) -> tuple[GuestRun, VcpuState]:
    name = "registers_el1t" if el1t else "registers_el1h"
    run = GuestRun(guest_programs.PROGRAMS[name][1])
    run.start()
    deadline = time.monotonic() + READY_TIMEOUT_S
    while run.memory.read_u64(guest_programs.READY_FLAG) != 1:
        assert time.monotonic() < deadline, f"{name} never got ready"
        time.sleep(0.01)
    run.vm.pause()
    return run, run.vm.vcpu_state(0)


@pytest.mark.parametrize("el1t", [False, True], ids=["EL1h", "EL1t"])
def test_the_state_holds_what_the_program_set(el1t):
    run, state = paused_register_program(el1t)
    try:
        assert guest_programs.register_state_mismatches(state, el1t, run.memory.read_u32) == []
        assert state.powered_on and state.mpidr == 0
    finally:
        run.vm.stop()


@pytest.mark.parametrize("el1t", [False, True], ids=["EL1h", "EL1t"])
def test_a_state_loaded_into_a_fresh_vm_reads_back_unchanged(el1t):
    run, state = paused_register_program(el1t)
    saved = run.vm.save_state()
    run.vm.stop()
    fresh = UnicornBackend().create_vm(run.description)
    try:
        fresh.restore_state(saved)
        again = fresh.vcpu_state(0)
    finally:
        fresh.close()
    assert guest_programs.register_state_mismatches(again, el1t, run.memory.read_u32) == []
    assert again.timer.virtual_count >= state.timer.virtual_count
    again.timer.virtual_count = state.timer.virtual_count
    assert again == state


def test_a_state_for_another_machine_is_refused_and_changes_nothing():
    run, _ = paused_register_program(False)
    saved = run.vm.save_state()
    run.vm.stop()
    other = GuestRun(guest_programs.PROGRAMS["registers_el1h"][1], vcpu_count=2)
    before = other.vm.vcpu_state(0)
    with pytest.raises(Exception, match="1 vCPUs were saved, the machine has 2"):
        other.vm.restore_state(saved)
    after = other.vm.vcpu_state(0)
    after.timer.virtual_count = before.timer.virtual_count      # the clock runs on meanwhile
    assert after == before

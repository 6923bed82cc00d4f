"""The backend-neutral machine state of a real Linux guest: what it says agrees with what
Linux itself reports, it loads back exactly, and the guest goes on on a VM built afresh from
it (same memory and devices) with its shell answering and its clock not jumping.

On Unicorn with 1 and 4 vCPUs on GICv3 and GICv2; on KVM (an aarch64 host with /dev/kvm:
the emulated-host suite, tests/kvm/pytest_in_host.py) with 1 and 2 vCPUs on the GIC the host
offers. One boot per configuration; the move to a fresh VM comes last.
"""

from __future__ import annotations

import os
import platform
import re
import time
from dataclasses import fields, is_dataclass

import pytest

from petard.core.arch import pstate as ps
from petard.core.backend import get_backend
from petard.testing.guest import GuestVm

KVM = platform.machine() == "aarch64" and os.access("/dev/kvm", os.W_OK)
CONFIGURATIONS = ([("unicorn", 1, 3), ("unicorn", 4, 3), ("unicorn", 1, 2), ("unicorn", 4, 2)]
                  + ([("kvm", 1, None), ("kvm", 2, None)] if KVM else []))
KERNEL_VA_START = 0xFFFF_0000_0000_0000
PAUSED_S = 3.0                  # the guest spends this long paused across the move
SAMPLES = 200
# How far a count read right after a restore may run ahead of the saved one (ticks: well
# over a second at any counter frequency a host gives a guest).
COUNTER_SLACK = 1 << 30


@pytest.fixture(scope="module", params=CONFIGURATIONS, ids=lambda c: f"{c[0]}-{c[1]}vcpu-gic{c[2] or 'host'}")
def booted(request):
    backend, vcpus, gic = request.param
    with GuestVm.boot(backend=backend, vcpu_count=vcpus, gic_version=gic) as vm:
        yield vm


def paused_state(vm: GuestVm):
    vm.machine.vm.pause()
    try:
        return vm.machine.vm.save_state()
    finally:
        vm.machine.vm.resume()


def differences(saved, loaded, path: str = "") -> list[str]:
    """Where two states differ, field by field (for a readable failure)."""
    if is_dataclass(saved):
        return [line for item in fields(saved)
                for line in differences(getattr(saved, item.name), getattr(loaded, item.name), f"{path}.{item.name}")]
    if isinstance(saved, (list, tuple)) and len(saved) == len(loaded):
        return [line for index, (a, b) in enumerate(zip(saved, loaded))
                for line in differences(a, b, f"{path}[{index}]")]
    if isinstance(saved, dict) and saved.keys() == loaded.keys():
        return [line for key in saved for line in differences(saved[key], loaded[key], f"{path}[{key!r}]")]
    return [] if saved == loaded else [f"{path}: saved {saved!r}, loaded {loaded!r}"]


def uptime(vm: GuestVm) -> float:
    return float(vm.run("cut -d' ' -f1 /proc/uptime").output.split()[-1])


def test_the_state_says_what_linux_reports(booted):
    vectors = int(re.search(r"^([0-9a-f]{16}) T vectors$", booted.run("grep -w vectors /proc/kallsyms").output,
                            re.M).group(1), 16)
    reported_mpidrs = {int(mpidr, 16) for mpidr in re.findall(
        r"(?:Booting Linux on physical CPU|Booted secondary processor) 0x([0-9a-f]+)", booted.console)}
    state = paused_state(booted)
    assert {vcpu.mpidr for vcpu in state.vcpus} == reported_mpidrs
    for vcpu in state.vcpus:
        assert vcpu.powered_on
        assert vcpu.system_registers["VBAR_EL1"] == vectors
        assert vcpu.sp_el1 >= KERNEL_VA_START                 # every CPU has its kernel stack
        assert len(vcpu.v) == 32 and len(vcpu.x) == 31

    # A busy loop in user space: sampled while it runs at EL0, PC lies in its executable
    # mapping and SP_EL0 in its stack, as /proc/<pid>/maps has them.
    pid = booted.run("sh -c 'while :; do :; done' >/dev/null 2>&1 & echo $!").output.split()[-1]
    try:
        maps = booted.run(f"cat /proc/{pid}/maps").output
        text = [(int(start, 16), int(end, 16)) for start, end in
                re.findall(r"^([0-9a-f]+)-([0-9a-f]+) r-xp \S+ \S+ \S+\s+/bin/busybox$", maps, re.M)]
        stack = [(int(start, 16), int(end, 16)) for start, end in
                 re.findall(r"^([0-9a-f]+)-([0-9a-f]+) rw-p .*\[stack\]$", maps, re.M)]
        assert text and stack, maps
        in_user = []
        for _ in range(SAMPLES):
            state = paused_state(booted)
            in_user += [vcpu for vcpu in state.vcpus
                        if ps.exception_level(vcpu.pstate) == 0 and any(a <= vcpu.pc < b for a, b in text)]
            if in_user:
                break
            time.sleep(0.01)
        assert in_user, "the busy loop was never caught at EL0"
        vcpu = in_user[0]
        assert vcpu.pstate & ps.PSTATE_MODE_MASK == ps.MODE_EL0t
        assert vcpu.live_sp == vcpu.sp_el0
        assert any(a <= vcpu.sp_el0 < b for a, b in stack), (hex(vcpu.sp_el0), maps)
        assert vcpu.sp_el1 >= KERNEL_VA_START
    finally:
        booted.run(f"kill {pid}")


def test_a_restored_state_reads_back_the_same(booted):
    machine = booted.machine
    state = paused_state(booted)
    fresh = get_backend(machine.spec.backend).create_vm(machine.description)
    try:
        fresh.restore_state(state)
        again = fresh.save_state()
    finally:
        fresh.close()
    for saved, loaded in zip(state.vcpus, again.vcpus):
        counted_on = loaded.timer.virtual_count - saved.timer.virtual_count
        assert 0 <= counted_on < COUNTER_SLACK
        loaded.timer.virtual_count = saved.timer.virtual_count
    assert differences(state, again) == []


def test_the_guest_goes_on_on_a_fresh_vm_and_its_clock_does_not_jump(booted):
    machine = booted.machine
    assert booted.run("echo before-the-move").output.splitlines()[-1] == "before-the-move"
    uptime_before, host_before = uptime(booted), time.monotonic()
    old_vm = machine.vm
    old_vm.pause()
    state = old_vm.save_state()
    time.sleep(PAUSED_S)
    machine.continue_on_new_vm(state)
    assert booted.run("echo after-the-move").output.splitlines()[-1] == "after-the-move"
    assert machine.vm is not old_vm
    uptime_after, host_after = uptime(booted), time.monotonic()
    # The guest's clock went on from where it was saved: the time between save and restore
    # is not in it.
    assert 0 < uptime_after - uptime_before < host_after - host_before - PAUSED_S / 2, \
        (uptime_before, uptime_after, host_after - host_before)
    cpus = len(machine.description.vcpu_mpidrs)
    # Busy workers on every CPU; each reports a number the shell computes, so the echoed
    # command line never matches.
    result = booted.run(" ".join(f"(n=0; while [ $n -lt 2000 ]; do n=$((n+1)); done; echo job-$(({i}+100))) &"
                                for i in range(cpus)) + " wait", timeout=120)
    assert sorted(re.findall(r"job-(\d+)", result.output)) == [str(i + 100) for i in range(cpus)]
    assert booted.run("nproc").output.split()[-1] == str(cpus)

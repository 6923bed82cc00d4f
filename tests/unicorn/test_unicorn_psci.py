"""PSCI over HVC: version and feature queries, CPU_ON/CPU_OFF/AFFINITY_INFO with two vCPUs,
SYSTEM_OFF and SYSTEM_RESET as VM exits."""

import pytest
from unicorn_harness import GuestRun

from petard.core.arch import psci
from petard.core.backend import ExitReason

QUERIES = r"""
.text
.globl _start
_start:
    psci_call PSCI_VERSION
    report x0
    ldr x1, =PSCI_CPU_ON
    psci_call PSCI_FEATURES
    report x0
    ldr x1, =PSCI_CPU_SUSPEND      // not implemented
    psci_call PSCI_FEATURES
    report x0
    psci_call PSCI_MIGRATE_INFO_TYPE
    report x0
    mov x1, #0                     // this vCPU
    mov x2, #0
    psci_call PSCI_AFFINITY_INFO
    report x0
    mov x1, #9                     // no such vCPU
    mov x2, #0
    psci_call PSCI_AFFINITY_INFO
    report x0
    psci_call 0x8400ff00           // unknown function
    report x0
    ldr x0, =0xc2000000            // SMC is not a conduit here
    smc #0
    report x0
    system_off
"""


def test_version_features_and_affinity_queries():
    run = GuestRun(QUERIES)
    exit_ = run.run()
    assert exit_.reason is ExitReason.POWER_OFF, exit_.describe()
    minus = psci.to_register
    assert run.reports == [
        psci.PSCI_VERSION_1_0, psci.PSCI_RET_SUCCESS, minus(psci.PSCI_RET_NOT_SUPPORTED),
        psci.MIGRATE_INFO_TOS_NOT_PRESENT, psci.AFFINITY_ON,
        minus(psci.PSCI_RET_INVALID_PARAMETERS), minus(psci.PSCI_RET_NOT_SUPPORTED),
        minus(psci.PSCI_RET_NOT_SUPPORTED)]


SECONDARY = r"""
// Handshake through two flags in memory; every wait loop contains an MSR, which is where
// the round-robin scheduler may switch vCPUs.
.text
.globl _start
_start:
    mov x1, #1                     // wake vCPU 1 at `secondary` with context 0x5ec
    ldr x2, =secondary
    ldr x3, =0x5ec
    psci_call PSCI_CPU_ON
    mov x19, x0
    ldr x5, =ready
1:  msr tpidr_el1, x5
    ldr x6, [x5]
    cbz x6, 1b
    mov x1, #1                     // vCPU 1 is running: a second CPU_ON is refused
    ldr x2, =secondary
    mov x3, #0
    psci_call PSCI_CPU_ON
    report x19
    report x0
    ldr x5, =go
    mov x6, #1
    str x6, [x5]
wait_off:                          // until vCPU 1 has switched itself off
    mov x1, #1
    mov x2, #0
    psci_call PSCI_AFFINITY_INFO
    cmp x0, #1                     // OFF
    b.ne wait_off
    report_imm 0x0ff
    system_off

secondary:
    report x0                      // the context id
    mrs x1, mpidr_el1
    report x1
    ldr x5, =ready
    mov x6, #1
    str x6, [x5]
    ldr x5, =go
1:  msr tpidr_el1, x5
    ldr x6, [x5]
    cbz x6, 1b
    psci_call PSCI_CPU_OFF
    report_imm 0xbad               // CPU_OFF does not return
1:  b 1b

.data
.balign 8
ready: .quad 0
go: .quad 0
"""


def test_cpu_on_starts_the_secondary_and_cpu_off_stops_it():
    run = GuestRun(SECONDARY, vcpu_count=2)
    exit_ = run.run()
    assert exit_.reason is ExitReason.POWER_OFF, exit_.describe()
    # The secondary reports its context id and MPIDR (bit 31 RES1, Aff0 = 1), then the
    # primary its two CPU_ON results, then that AFFINITY_INFO saw the secondary OFF.
    assert run.reports == [0x5EC, 0x8000_0001, psci.PSCI_RET_SUCCESS,
                           psci.to_register(psci.PSCI_RET_ALREADY_ON), 0x0FF]


@pytest.mark.parametrize("function, reason", [
    ("PSCI_SYSTEM_OFF", ExitReason.POWER_OFF), ("PSCI_SYSTEM_RESET", ExitReason.RESET)])
def test_system_off_and_reset_end_the_vm(function, reason):
    run = GuestRun(f".text\n.globl _start\n_start:\n psci_call {function}\n report_imm 0xbad\n"
                   "1: b 1b\n")
    exit_ = run.run()
    assert exit_.reason is reason
    assert run.reports == []

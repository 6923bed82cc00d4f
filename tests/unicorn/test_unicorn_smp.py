"""Two vCPUs (two Unicorn engines on one RAM): code patched by one vCPU with the
architectural maintenance sequence is seen by the other (IC IVAU replayed across engines)."""

from unicorn_harness import GuestRun

from petard.core.backend import ExitReason

PATCHING = r"""
.text
.globl _start
_start:
    bl func                        // translated (and cached) by vCPU 0's engine
    report x0
    mov x1, #1
    ldr x2, =patcher
    mov x3, #0
    psci_call PSCI_CPU_ON
    ldr x5, =patched
1:  msr tpidr_el1, x5              // a stop point for the round-robin scheduler
    ldr x6, [x5]
    cbz x6, 1b
    isb
    bl func
    report x0
    system_off

patcher:                           // vCPU 1 rewrites func's first instruction
    ldr x1, =func
    ldr w2, replacement
    str w2, [x1]
    dc cvau, x1
    dsb ish
    ic ivau, x1
    dsb ish
    isb
    ldr x5, =patched
    mov x6, #1
    str x6, [x5]
    psci_call PSCI_CPU_OFF

func:
    mov x0, #1
    ret
replacement:
    mov x0, #2

.data
.balign 8
patched: .quad 0
"""


def test_code_patched_on_one_vcpu_is_executed_by_the_other():
    run = GuestRun(PATCHING, vcpu_count=2)
    exit_ = run.run()
    assert exit_.reason is ExitReason.POWER_OFF, exit_.describe()
    assert run.reports == [1, 2]
    assert run.vm.stats()["coherence-page-invalidations"] >= 1

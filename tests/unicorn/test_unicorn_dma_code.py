"""Code a device writes into guest RAM (DMA: host-side writes Unicorn does not see) runs once
the guest has done the architecture's cache maintenance, instead of stale translations of
what the page held before. (Linux does the same maintenance before it runs a page read from
disk.) With one vCPU and with two, where the other vCPU translated the old code."""

import pytest
from unicorn_harness import GuestRun

from petard.core.backend import ExitReason

PROGRAM = r"""
.text
.globl _start
_start:
    bl func                        // translated (and cached) with its old code
    report x0
    ldr x1, =PROBE_BASE
    str wzr, [x1, #PROBE_DMA]      // the "device" writes new code over func
    ldr x1, =func
    dc cvau, x1                    // what Linux does before executing the page
    dsb ish
    ic ivau, x1
    dsb ish
    isb
    bl func
    report x0
    system_off

.balign 4096
func:
    mov x0, #1
    ret

.balign 4096
replacement:                       // what the device writes over func's first instruction
    mov x0, #2
"""


@pytest.mark.parametrize("vcpu_count", [1, 2])
def test_code_written_by_a_device_runs_after_cache_maintenance(vcpu_count):
    run = GuestRun(PROGRAM, vcpu_count=vcpu_count)
    func = run.program.address("func")
    new_code = run.memory.read_u32(run.program.address("replacement"))
    run.probe.on_dma = lambda: run.memory.write_u32(func, new_code)
    exit_ = run.run()
    assert exit_.reason is ExitReason.POWER_OFF, exit_.describe()
    assert run.reports == [1, 2]
    assert run.vm.stats()["published-page-invalidations"] >= 1

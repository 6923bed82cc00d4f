"""The emulated generic timer: a virtual-timer interrupt fires after the programmed delay,
CNTV_CTL shows ISTATUS, and a halted guest costs (almost) no host CPU while it waits."""

import time

import pytest
from unicorn_gic_asm import gic_macros
from unicorn_harness import GuestRun

from petard.backends.unicorn.timer import COUNTER_FREQUENCY_HZ
from petard.core import layout
from petard.core.arch import sysregs
from petard.core.backend import ExitReason

DELAY_SECONDS = 0.5
DELAY_TICKS = int(COUNTER_FREQUENCY_HZ * DELAY_SECONDS)

# Idle the way Linux does: WFI with IRQs masked, then `msr daifclr` (variant "masked"),
# or WFI with IRQs already unmasked (variant "unmasked").
IDLE = {
    "masked": "idle:\n msr daifset, #2\n wfi\n msr daifclr, #2\n b idle\n",
    "unmasked": "msr daifclr, #2\nidle:\n wfi\n b idle\n",
}

TIMER_SOURCE = r"""
.text
.globl _start
_start:
    set_up_stack
    gic_init
    gic_enable INTID_VIRT_TIMER
    mrs x20, cntvct_el0
    ldr x1, =DELAY_TICKS
    msr cntv_tval_el0, x1
    mov x0, #1                      // ENABLE, not masked
    msr cntv_ctl_el0, x0
    {idle}

irq_handler:
    gic_ack x19
    report x19
    mrs x1, cntvct_el0
    sub x1, x1, x20
    report x1
    mrs x2, cntv_ctl_el0
    report x2
    msr cntv_ctl_el0, xzr           // disable: the level drops
    gic_eoi x19
    system_off
    vector_table irq=irq_handler
    stack_area
"""


@pytest.mark.parametrize("gic_version", [3, 2])
@pytest.mark.parametrize("idle", ["masked", "unmasked"])
def test_virtual_timer_interrupt_after_delay_with_idle_host(gic_version, idle):
    source = (f".equ DELAY_TICKS, {DELAY_TICKS}\n.equ INTID_VIRT_TIMER, {layout.TIMER_VIRT_INTID}\n"
              + gic_macros(gic_version) + TIMER_SOURCE.replace("{idle}", IDLE[idle]))
    run = GuestRun(source, gic_version=gic_version)
    started = time.monotonic()  # before the guest starts, so the wall time cannot undercount
    thread = run.start()
    thread.join(10)
    assert not thread.is_alive(), run.reports
    wall = time.monotonic() - started
    assert run.exit.reason is ExitReason.POWER_OFF, run.exit.describe()
    intid, elapsed_ticks, control = run.reports
    assert intid == layout.TIMER_VIRT_INTID
    assert DELAY_TICKS <= elapsed_ticks < DELAY_TICKS + COUNTER_FREQUENCY_HZ // 10
    assert control == sysregs.CNT_CTL_ENABLE | sysregs.CNT_CTL_ISTATUS
    assert wall >= DELAY_SECONDS
    # The vCPU thread slept in WFI: its CPU time is a small part of the wait (< 5%).
    assert run.vm.idle_seconds >= DELAY_SECONDS * 0.9
    assert run.cpu_seconds < 0.05 * run.wall_seconds, (run.cpu_seconds, run.wall_seconds)

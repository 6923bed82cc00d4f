"""pause()/resume()/stop() from another thread: the guest stops at a safe point, stays
exactly where it was while paused, and continues from there."""

import time

from unicorn_harness import GuestRun

from petard.core.backend import ExitReason

COUNTING = r"""
.text
.globl _start
_start:
    ldr x5, =counter
    mov x6, #0
1:  add x6, x6, #1
    str x6, [x5]
    msr tpidr_el1, x6              // kernels execute MSRs all the time; they are stop points
    b 1b
.data
.balign 8
counter: .quad 0
"""


def test_pause_freezes_the_guest_and_resume_continues_it():
    run = GuestRun(COUNTING)
    counter_address = run.program.address("counter")
    thread = run.start()
    time.sleep(0.3)
    run.vm.pause()
    assert run.vm.paused
    frozen_registers = run.vm.vcpu_registers(0)
    frozen_counter = run.memory.read_u64(counter_address)
    assert frozen_counter > 1000
    time.sleep(0.3)
    assert run.memory.read_u64(counter_address) == frozen_counter
    assert run.vm.vcpu_registers(0) == frozen_registers
    # The guest's own view is consistent: the last stored value is x6 (or x6 - 1 when the
    # stop came between the add and the store).
    assert frozen_registers["x6"] - frozen_counter in (0, 1)
    run.vm.resume()
    time.sleep(0.3)
    assert run.memory.read_u64(counter_address) > frozen_counter
    run.vm.stop()
    thread.join(5)
    assert run.exit.reason is ExitReason.STOPPED


IDLE = r"""
.text
.globl _start
_start:
1:  wfi
    b 1b
"""


def test_pause_and_stop_while_the_guest_idles():
    run = GuestRun(IDLE)
    thread = run.start()
    time.sleep(0.2)
    run.vm.pause()
    assert run.vm.paused
    run.vm.stop()                      # stop also ends a paused VM
    thread.join(5)
    assert not thread.is_alive()
    assert run.exit.reason is ExitReason.STOPPED

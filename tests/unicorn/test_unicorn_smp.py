"""Several vCPUs (sharing one Unicorn engine) driven by small assembled guests: code
patched by one vCPU is executed by the other (the translation cached for the first is
dropped for both); 32 vCPUs
start with their own MPIDR; pause/resume stops and restarts all vCPUs; an SGI and a timer
for a vCPU waiting in WFI are taken promptly while another vCPU is busy with a long slice;
spin hints in code published later are patched and make the spinner give way."""

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


MAX_VCPUS = 32

ALL_CPUS_ON_AND_OFF = r"""
.text
.globl _start
_start:                            // boot CPU: start every other vCPU, wait for all to stop
    ldr x19, =mpidrs
    mov x20, #1
1:  ldr x1, [x19, x20, lsl #3]
    ldr x2, =secondary
    mov x3, x20                    // context id: the vCPU index
    psci_call PSCI_CPU_ON
    report x0
    add x20, x20, #1
    cmp x20, #VCPU_COUNT
    b.lo 1b
    mov x20, #1
2:  ldr x1, [x19, x20, lsl #3]
    mov x2, #0
    psci_call PSCI_AFFINITY_INFO
    cmp x0, #AFFINITY_OFF
    b.ne 2b
    add x20, x20, #1
    cmp x20, #VCPU_COUNT
    b.lo 2b
    system_off

secondary:                         // report (context id << 32 | own MPIDR affinity), power off
    mrs x1, mpidr_el1
    and x1, x1, #0xFFFFFF
    orr x1, x1, x0, lsl #32
    report x1
    psci_call PSCI_CPU_OFF

.data
.balign 8
mpidrs: .quad {mpidr_list}
"""


def test_thirty_two_vcpus_each_start_with_their_own_mpidr():
    from petard.core.arch import psci
    from petard.core.machine import vcpu_mpidrs

    mpidrs = vcpu_mpidrs(MAX_VCPUS)
    source = (f".equ VCPU_COUNT, {MAX_VCPUS}\n.equ AFFINITY_OFF, {psci.AFFINITY_OFF}\n"
              + ALL_CPUS_ON_AND_OFF.replace("{mpidr_list}", ", ".join(hex(m) for m in mpidrs)))
    run = GuestRun(source, vcpu_count=MAX_VCPUS)
    exit_ = run.run(timeout=60)
    assert exit_.reason is ExitReason.POWER_OFF, exit_.describe()
    successes = [value for value in run.reports if value == psci.PSCI_RET_SUCCESS]
    started = sorted(value for value in run.reports if value != psci.PSCI_RET_SUCCESS)
    assert len(successes) == MAX_VCPUS - 1
    assert started == [index << 32 | mpidrs[index] & 0xFFFFFF for index in range(1, MAX_VCPUS)]


TWO_COUNTERS = r"""
.text
.globl _start
_start:                            // vCPU 0 starts vCPU 1, then both count in their own slot
    mov x1, #1
    ldr x2, =count
    mov x3, #8
    psci_call PSCI_CPU_ON
    mov x0, #0
count:                             // x0 = this vCPU's slot offset
    ldr x5, =counters
    add x5, x5, x0
    mov x6, #0
1:  add x6, x6, #1
    str x6, [x5]
    msr tpidr_el1, x6              // a stop point
    b 1b
.data
.balign 8
counters: .quad 0, 0
"""


def test_pause_stops_every_vcpu_and_resume_restarts_them_all():
    import time

    run = GuestRun(TWO_COUNTERS, vcpu_count=2)
    counters = run.program.address("counters")

    def read():
        return run.memory.read_u64(counters), run.memory.read_u64(counters + 8)

    thread = run.start()
    time.sleep(0.5)
    run.vm.pause()
    frozen = read()
    assert all(count > 100 for count in frozen), frozen     # both vCPUs ran
    time.sleep(0.3)
    assert read() == frozen                                  # neither runs while paused
    run.vm.resume()
    time.sleep(0.5)
    resumed = read()
    assert all(after > before for after, before in zip(resumed, frozen)), (frozen, resumed)
    run.vm.stop()
    thread.join(5)
    assert run.exit.reason is ExitReason.STOPPED


# The end of the waiting-vCPU programs: unmask IRQs, tell the others it is ready, sleep in WFI;
# the first IRQ is acknowledged, reported and powers the machine off.
WAIT_FOR_IRQ_AND_REPORT_IT = r"""
    msr daifclr, #2
    ldr x5, =ready
    mov x6, #1
    str x6, [x5]
3:  wfi
    b 3b
irq_handler:
    mrs x19, ICC_IAR1_EL1
    report x19
    system_off
    vector_table irq=irq_handler
.data
ready: .quad 0
    stack_area
"""


SGI_TO_A_WAITING_VCPU = r"""
.text
.globl _start
_start:                            // vCPU 0: start vCPU 1, wait until it is ready, send it SGI 1, then stay busy
    ldr x24, =GICD_BASE
    mov w25, #(GICD_CTLR_ENABLE_GRP1 | GICD_CTLR_ARE)
    str w25, [x24, #GICD_CTLR]
    mov x1, #1
    ldr x2, =secondary
    mov x3, #0
    psci_call PSCI_CPU_ON
    ldr x5, =ready
1:  mov x1, #1
    mov x2, #0
    psci_call PSCI_AFFINITY_INFO   // an HVC: a stop point where the VMM lets vCPU 1 run
    ldr x6, [x5]
    cbz x6, 1b
    report_imm 0xAA
    ldr x7, =((1 << 24) | (1 << 1))   // SGI 1, Aff1-3 = 0, target list = Aff0 1
    msr ICC_SGI1R_EL1, x7
2:  msr tpidr_el1, x7              // busy: only the slice end (or a kick) stops it
    b 2b

secondary:                         // vCPU 1: its redistributor, SGI 1 enabled, then WFI
    set_up_stack
    ldr x24, =(GICR_BASE + GICR_STRIDE)
    str wzr, [x24, #GICR_WAKER]
    add x24, x24, #GICR_SGI_BASE
    mov w25, #(1 << 1)
    str w25, [x24, #GICD_ISENABLER]
    mov x25, #0xf0
    msr ICC_PMR_EL1, x25
    mov x25, #1
    msr ICC_IGRPEN1_EL1, x25
    isb
""" + WAIT_FOR_IRQ_AND_REPORT_IT


def test_an_interrupt_for_a_waiting_vcpu_does_not_wait_for_the_running_ones_slice():
    from petard.core.arch import gic
    from unicorn_gic_asm import gic_macros

    long_slice_s = 3.0
    source = f".equ GICR_STRIDE, {gic.GICR_STRIDE:#x}\n" + gic_macros(3) + SGI_TO_A_WAITING_VCPU
    run = GuestRun(source, vcpu_count=2)
    run.vm.slice_ns = int(long_slice_s * 1e9)
    exit_ = run.run(timeout=20)
    assert exit_.reason is ExitReason.POWER_OFF, exit_.describe()
    assert run.reports == [0xAA, 1]
    latency = run.probe.report_times[1] - run.probe.report_times[0]
    assert latency < long_slice_s / 3, latency


TIMER_OF_A_WAITING_VCPU = r"""
.text
.globl _start
_start:                            // vCPU 0: start vCPU 1, wait until it is ready, then stay busy
    ldr x24, =GICD_BASE
    mov w25, #(GICD_CTLR_ENABLE_GRP1 | GICD_CTLR_ARE)
    str w25, [x24, #GICD_CTLR]
    mov x1, #1
    ldr x2, =secondary
    mov x3, #0
    psci_call PSCI_CPU_ON
    ldr x5, =ready
1:  mov x1, #1
    mov x2, #0
    psci_call PSCI_AFFINITY_INFO
    ldr x6, [x5]
    cbz x6, 1b
    report_imm 0xAA
2:  msr tpidr_el1, x6
    b 2b

secondary:                         // vCPU 1: its virtual timer due in 1/20 s, then WFI
    set_up_stack
    ldr x24, =(GICR_BASE + GICR_STRIDE)
    str wzr, [x24, #GICR_WAKER]
    add x24, x24, #GICR_SGI_BASE
    mov w25, #(1 << INTID_VIRT_TIMER)
    str w25, [x24, #GICD_ISENABLER]
    mov x25, #0xf0
    msr ICC_PMR_EL1, x25
    mov x25, #1
    msr ICC_IGRPEN1_EL1, x25
    isb
    mrs x1, cntfrq_el0
    mov x2, #20
    udiv x1, x1, x2
    msr cntv_tval_el0, x1
    mov x0, #1
    msr cntv_ctl_el0, x0
""" + WAIT_FOR_IRQ_AND_REPORT_IT


def test_the_timer_of_a_waiting_vcpu_fires_on_time_while_another_is_busy():
    from petard.core.arch import gic
    from petard.core import layout
    from unicorn_gic_asm import gic_macros

    long_slice_s = 3.0
    source = (f".equ GICR_STRIDE, {gic.GICR_STRIDE:#x}\n.equ INTID_VIRT_TIMER, {layout.TIMER_VIRT_INTID}\n"
              + gic_macros(3) + TIMER_OF_A_WAITING_VCPU)
    run = GuestRun(source, vcpu_count=2)
    run.vm.slice_ns = int(long_slice_s * 1e9)
    exit_ = run.run(timeout=20)
    assert exit_.reason is ExitReason.POWER_OFF, exit_.describe()
    assert run.reports == [0xAA, layout.TIMER_VIRT_INTID]
    latency = run.probe.report_times[1] - run.probe.report_times[0]
    assert latency < long_slice_s / 3, latency


SPIN_IN_PUBLISHED_CODE = r"""
.text
.globl _start
_start:                            // vCPU 0: start vCPU 1; once it spins in its new code, release it
                                   // (vCPU 0 only runs if the spinning vCPU 1 gives way)
    mov x1, #1
    ldr x2, =publisher
    mov x3, #0
    psci_call PSCI_CPU_ON
    ldr x5, =started
1:  mov x1, #1
    mov x2, #0
    psci_call PSCI_AFFINITY_INFO   // a stop point where the VMM lets vCPU 1 run
    ldr x6, [x5]
    cbz x6, 1b
    report_imm 0xAA
    ldr x5, =release
    mov x6, #1
    str x6, [x5]
2:  mov x1, #1
    mov x2, #0
    psci_call PSCI_AFFINITY_INFO
    b 2b

publisher:                         // vCPU 1: copy a spin loop into a buffer (like a module load),
    ldr x1, =template              // make it executable with the architectural sequence, run it
    ldr x2, =template_end
    ldr x3, =code_buffer
    mov x4, x3
3:  ldr w0, [x1], #4
    str w0, [x4], #4
    cmp x1, x2
    b.lo 3b
    dc cvau, x3
    dsb ish
    ic ivau, x3
    dsb ish
    isb
    ldr x5, =started
    mov x6, #1
    str x6, [x5]
    ldr x5, =release
    ldr x7, =released
    br x3
released:
    report_imm 0xBB
    system_off

template:                          // while (!release) cpu_relax(); then return through x7
4:  ldr x6, [x5]
    cbnz x6, 5f
    yield
    b 4b
5:  br x7
template_end:

.data
.balign 8
started: .quad 0
release: .quad 0
.balign 4096
code_buffer: .fill 1024, 4, 0
"""


def test_spin_hints_in_code_published_later_are_patched_and_yield():
    """A YIELD loop has no other stop point: unpatched, vCPU 1 would spin forever."""
    from petard.backends.unicorn.spin_sites import SPIN_CALL

    run = GuestRun(SPIN_IN_PUBLISHED_CODE, vcpu_count=2)
    run.vm.smp.published_code_va_start = 0     # no MMU here: every address is "kernel code"
    exit_ = run.run(timeout=20)
    assert exit_.reason is ExitReason.POWER_OFF, exit_.describe()
    assert run.reports == [0xAA, 0xBB]
    yield_offset = 2 * 4
    assert run.memory.read_u32(run.program.address("code_buffer") + yield_offset) == SPIN_CALL
    stats = run.vm.stats()
    assert stats["spin-sites-patched-later"] == 1 and stats["spin-yields"] >= 1

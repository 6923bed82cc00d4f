"""Synchronous exceptions are entered into the guest's EL1 vector table with the right
syndrome, return address, saved PSTATE, fault address and stack pointer."""

from unicorn_harness import GuestRun

from petard.core.arch import esr
from petard.core.arch import pstate as ps
from petard.core.backend import ExitReason

EL1_STACK_TOP_OFFSET = 0x10000
L1_BLOCK_ATTRIBUTES = """
.equ BLOCK_NORMAL, 0x401        // L1 block, AF, MAIR attribute 0
.equ BLOCK_DEVICE, 0x405        // L1 block, AF, MAIR attribute 1
"""

SOURCE = L1_BLOCK_ATTRIBUTES + r"""
.text
.globl _start
_start:
    ldr x0, =el1_stack_top
    mov sp, x0
    install_vectors
    msr daifclr, #0x4          // PSTATE before the SVC: D, I, F masked, A clear
svc_site:
    svc #0x42
    udf #7
udf_return:
    brk #3
brk_return:
    // MMU on: identity 1 GiB blocks for the devices and RAM, nothing below 1 GiB.
    ldr x0, =0x00ff
    msr mair_el1, x0
    ldr x0, =(25 | (1 << 23))  // T0SZ=25 (39-bit VA, level-1 start), no TTBR1 walks
    msr tcr_el1, x0
    ldr x0, =l1_table
    msr ttbr0_el1, x0
    isb
    mrs x0, sctlr_el1
    orr x0, x0, #1
    msr sctlr_el1, x0
    isb
    mov x2, #0x1000
load_site:
    ldr x1, [x2]               // translation fault, level 1
    mov x2, #0x2008
store_site:
    str x1, [x2]               // translation fault, write
    // To EL0 with its own stack; it makes a system call.
    ldr x0, =el0_code
    msr elr_el1, x0
    msr spsr_el1, xzr           // EL0t, nothing masked
    ldr x0, =el0_stack_top
    msr sp_el0, x0
    eret

el0_code:
    mov x3, #0x55
el0_svc_site:
    svc #0x77
    system_off                 // not reached: the EL0 handler powers off

sync_handler:
    mrs x0, esr_el1
    report x0
    mrs x0, elr_el1
    report x0
    mrs x0, spsr_el1
    report x0
    mrs x0, far_el1
    report x0
    mrs x0, esr_el1
    lsr x0, x0, #26
    cmp x0, #0x15              // SVC: ELR is already the next instruction
    b.eq 1f
    mrs x0, elr_el1
    add x0, x0, #4
    msr elr_el1, x0
1:  eret

lower_sync_handler:
    mrs x0, esr_el1
    report x0
    mrs x0, elr_el1
    report x0
    mrs x0, spsr_el1
    report x0
    mov x0, sp
    report x0
    mrs x0, sp_el0
    report x0
    report x3
    system_off

    vector_table sync=sync_handler, lower_sync=lower_sync_handler

.data
.balign 4096
l1_table:
    .quad 0
    .quad 0x40000000 | BLOCK_DEVICE
    .quad 0x80000000 | BLOCK_NORMAL
    .fill 509, 8, 0
.balign 16
    .fill 512, 8, 0
el0_stack_top:
    .fill 1024, 8, 0
el1_stack_top:
"""


def test_synchronous_exceptions_enter_the_guest_vectors():
    run = GuestRun(SOURCE)
    exit_ = run.run()
    assert exit_.reason is ExitReason.POWER_OFF, exit_.describe()
    sym = run.program.symbols
    reports = run.reports
    el1_masked = ps.PSTATE_D | ps.PSTATE_I | ps.PSTATE_F | ps.MODE_EL1h
    # (ESR, ELR, SPSR, FAR) per exception taken at EL1.
    svc, udf, brk, load, store = [reports[i:i + 4] for i in range(0, 20, 4)]
    assert svc[:3] == [esr.make_esr(esr.EC_SVC64, 0x42), sym["svc_site"] + 4, el1_masked]
    assert udf[:2] == [esr.make_esr(esr.EC_UNKNOWN), sym["svc_site"] + 4]
    assert brk[:2] == [esr.make_esr(esr.EC_BRK64, 3), sym["brk_return"] - 4]
    assert load == [esr.make_esr(esr.EC_DABT_CUR, esr.FSC_TRANSLATION_L1),
                    sym["load_site"], el1_masked, 0x1000]
    assert store[0] == esr.make_esr(esr.EC_DABT_CUR, esr.ISS_DABT_WNR | esr.FSC_TRANSLATION_L1)
    assert store[1] == sym["store_site"] and store[3] == 0x2008
    # From EL0: lower-EL vector, SP switched to SP_EL1, SP_EL0 preserved, registers intact.
    el0 = reports[20:]
    assert el0 == [esr.make_esr(esr.EC_SVC64, 0x77), sym["el0_svc_site"] + 4, ps.MODE_EL0t,
                   sym["el1_stack_top"], sym["el0_stack_top"], 0x55]

"""Guest failures become a FATAL_ERROR exit with registers and the code around PC, and an
access to an unmapped physical address reads as zero (like an unhandled MMIO exit)."""

from unicorn_harness import GuestRun

from petard.core.backend import ExitReason

UNMAPPED_READ = r"""
.text
.globl _start
_start:
    mov x1, #0x1000                // nothing lives here
    ldr x2, =0xdeadbeef
    ldr w2, [x1]                   // zero-extends into x2
    report x2
    system_off
"""


def test_unmapped_physical_read_returns_zero():
    run = GuestRun(UNMAPPED_READ)
    exit_ = run.run()
    assert exit_.reason is ExitReason.POWER_OFF, exit_.describe()
    assert run.reports == [0]
    assert run.bus.unmapped_accesses == 1


JUMP_TO_NOWHERE = r"""
.text
.globl _start
_start:
    ldr x7, =0x7777
    ldr x0, =0x10000000            // no memory at all: the fetch fails
jump_site:
    br x0
"""


def test_fetch_from_nowhere_is_a_fatal_error_with_a_register_dump():
    run = GuestRun(JUMP_TO_NOWHERE)
    exit_ = run.run()
    assert exit_.reason is ExitReason.FATAL_ERROR
    assert "UC_ERR_FETCH_UNMAPPED" in exit_.message
    assert exit_.registers["x7"] == 0x7777
    assert exit_.registers["pc"] == 0x10000000
    assert exit_.vcpu_index == 0
    assert any(line.startswith("=>") and "unreadable" in line for line in exit_.disassembly)
    text = exit_.describe()
    assert "fatal-error" in text and "x7=0x0000000000007777" in text.replace(" ", "")


UNDEFINED_WITHOUT_VECTORS = r"""
.text
.globl _start
_start:
    ldr x0, =0x10000000            // VBAR_EL1 points at nothing
    msr vbar_el1, x0
    isb
    mov x3, #3
undefined_site:
    udf #1
"""


def test_exception_into_missing_vectors_reports_the_faulting_code():
    run = GuestRun(UNDEFINED_WITHOUT_VECTORS)
    exit_ = run.run()
    assert exit_.reason is ExitReason.FATAL_ERROR
    assert exit_.registers["elr_el1"] == run.program.address("undefined_site")
    assert exit_.registers["esr_el1"] >> 26 == 0          # EC: unknown instruction
    assert exit_.registers["x3"] == 3

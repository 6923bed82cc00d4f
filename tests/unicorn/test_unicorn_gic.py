"""Both emulated GICs, driven by assembled guests: a device SPI held off by the priority
mask and then delivered, running priority while active, an SGI to self."""

import pytest
from unicorn_gic_asm import gic_macros
from unicorn_harness import GuestRun

from petard.core.backend import ExitReason
from petard.core import layout
from unicorn_harness import PROBE_GSI

PROBE_INTID = PROBE_GSI + layout.SPI_START

SPI_SOURCE = r"""
.text
.globl _start
_start:
    set_up_stack
    gic_init
    gic_priority PROBE_INTID, 0xc0
    gic_enable PROBE_INTID
    mov x0, #0x80                   // mask priority 0xc0
    gic_pmr x0
    msr daifclr, #2
    ldr x1, =PROBE_BASE
    mov w0, #1
    str w0, [x1, #PROBE_IRQ_LEVEL]  // the device raises its line
    mov x9, #2000                   // give the VMM many chances to (wrongly) deliver
1:  msr tpidr_el1, x9
    subs x9, x9, #1
    b.ne 1b
    report_imm 0x1                  // still here: the SPI was masked
    gic_pending x0, PROBE_INTID
    report x0
    mov x0, #0xf0                   // unmask: now the SPI must be taken
    gic_pmr x0
2:  msr tpidr_el1, x9
    b 2b

irq_handler:
    gic_ack x19
    report x19
    gic_rpr x0
    report x0
    ldr x1, =PROBE_BASE
    str wzr, [x1, #PROBE_IRQ_LEVEL]  // the device lowers its line
    gic_eoi x19
    gic_rpr x0
    report x0
    gic_ack x0                      // nothing else pending: spurious
    report x0
    system_off

    vector_table irq=irq_handler
    stack_area
"""


@pytest.mark.parametrize("gic_version", [3, 2])
def test_device_spi_respects_priority_mask_then_is_delivered(gic_version):
    run = GuestRun(gic_macros(gic_version) + SPI_SOURCE, gic_version=gic_version)
    exit_ = run.run()
    assert exit_.reason is ExitReason.POWER_OFF, exit_.describe()
    assert run.reports == [0x1, 1, PROBE_INTID, 0xC0, 0xFF, 1023]


SGI_SOURCE = r"""
.text
.globl _start
_start:
    set_up_stack
    gic_init
    gic_enable 3
    msr daifclr, #2
    gic_sgi_self 3
1:  msr tpidr_el1, x0
    b 1b
irq_handler:
    gic_ack x19
    report x19
    gic_eoi x19
    system_off
    vector_table irq=irq_handler
    stack_area
"""


@pytest.mark.parametrize("gic_version", [3, 2])
def test_sgi_to_self(gic_version):
    run = GuestRun(gic_macros(gic_version) + SGI_SOURCE, gic_version=gic_version)
    exit_ = run.run()
    assert exit_.reason is ExitReason.POWER_OFF, exit_.describe()
    assert run.reports == [3]      # GICv2 IAR also carries the source CPU: 0

"""The native hook filters (backends/unicorn/hook_filter.c): built by the install, each
decision of theirs checked by calling them directly with the VMM's own class tables, and a
guest whose IRQ waits for an `msr daif` unmask behaving the same with and without them."""

import ctypes
import time

import pytest
from unicorn_gic_asm import gic_macros
from unicorn_harness import PROBE_GSI, GuestRun

from petard.backends.unicorn import hook_filter, raw_hooks
from petard.backends.unicorn.cpu import CpRegister
from petard.backends.unicorn.engine import _sys_classes
from petard.backends.unicorn.engine import PAGE_MASK
from petard.backends.unicorn.vcpu import msr_classes
from petard.core import layout
from petard.core.arch import pstate as ps
from petard.core.arch import sysregs
from petard.core.backend import ExitReason

FAR_FUTURE_NS = 1 << 62
PAGE = 0xFFFF_8000_1234_5000


@pytest.fixture
def library():
    path = hook_filter.library_path()
    assert path is not None, ("the install did not build petard.backends.unicorn._hook_filter "
                              "(is a C compiler installed?)")
    return ctypes.CDLL(path)


class Recorder:
    """A gate whose slow paths record what the filters passed on."""

    def __init__(self):
        self.gate = hook_filter.HookGate(page_mask=PAGE_MASK, unmask_bit=ps.PSTATE_I)
        self.gate.stop_deadline_ns = FAR_FUTURE_NS
        self.gate.msr_classes = ctypes.cast(msr_classes(), ctypes.POINTER(ctypes.c_uint8))
        self.gate.sys_classes = ctypes.cast(_sys_classes(), ctypes.POINTER(ctypes.c_uint8))
        self.passed: list = []
        self.gate.msr_slow = self._msr = raw_hooks.SysInsnCallback(self._record("msr"))
        self.gate.sys_slow = self._sys = raw_hooks.SysInsnCallback(self._record("sys"))
        self.gate.block_slow = self._block = raw_hooks.BlockCallback(
            lambda _uc, address, _size, _ud: self.passed.append(("block", address)))

    def _record(self, kind):
        def slow(_uc, _reg, cp, _user_data):
            c = cp.contents
            self.passed.append((kind, (c.op0, c.op1, c.crn, c.crm, c.op2), c.val))
            return 0
        return slow

    def call(self, function, reg, value=0) -> bool:
        """Call a filter for an access to `reg`; True if it passed the call on."""
        before = len(self.passed)
        cp = CpRegister(crn=reg.crn, crm=reg.crm, op0=reg.op0, op1=reg.op1, op2=reg.op2, val=value)
        function(None, 0, ctypes.byref(cp), ctypes.byref(self.gate))
        return len(self.passed) > before


def test_msr_filter_passes_on_only_what_the_msr_hook_acts_on(library):
    recorder = Recorder()
    msr = library.petard_msr_filter
    assert not recorder.call(msr, sysregs.TPIDR_EL1, 1)
    assert not recorder.call(msr, sysregs.DAIF, 0)                  # unmask, none wanted
    recorder.gate.irq_wanted = 1
    assert not recorder.call(msr, sysregs.DAIF, ps.PSTATE_I)        # still masked
    assert recorder.call(msr, sysregs.DAIF, 0)                      # unmask with an IRQ wanted
    assert recorder.call(msr, sysregs.CNTV_CTL_EL0, 1)              # the emulated timer
    assert recorder.call(msr, sysregs.ICC_PMR_EL1, 0xF0)            # the GIC CPU interface
    assert recorder.gate.answered_msr == 3
    recorder.gate.stop_deadline_ns = time.monotonic_ns()            # the slice is over
    assert recorder.call(msr, sysregs.TPIDR_EL1, 1)                 # any MSR is a stop point
    assert recorder.passed[0] == ("msr", tuple(sysregs.DAIF), 0)


def test_sys_filter_passes_on_each_published_code_page_once(library):
    recorder = Recorder()
    sys_filter = library.petard_sys_filter
    dc_cvau = sysregs.SysReg(1, 3, 7, 11, 1)
    tlbi_vae1is = sysregs.SysReg(1, 0, 8, 3, 1)
    assert not recorder.call(sys_filter, dc_cvau, PAGE)
    assert not recorder.call(sys_filter, tlbi_vae1is, 0)
    assert recorder.call(sys_filter, sysregs.IC_IVAU, PAGE + 0x40)
    recorder.gate.last_page = PAGE                                  # what the SYS hook records
    assert not recorder.call(sys_filter, sysregs.IC_IVAU, PAGE + 0x80)
    assert recorder.call(sys_filter, sysregs.IC_IVAU, PAGE + 0x1000)
    assert recorder.gate.answered_sys == 3


def test_block_filter_passes_on_once_the_deadline_is_reached(library):
    recorder = Recorder()
    block = library.petard_block_filter
    block(None, ctypes.c_uint64(0x400000), 4, ctypes.byref(recorder.gate))
    recorder.gate.stop_deadline_ns = 0
    block(None, ctypes.c_uint64(0x400004), 4, ctypes.byref(recorder.gate))
    assert recorder.passed == [("block", 0x400004)]
    assert recorder.gate.answered_block == 1


# The probe raises its SPI while IRQs are masked; the guest then runs many masked
# `msr daif` writes (which the filter answers) before the one that unmasks. The interrupt must
# be taken right at that unmask (the "daif trick"), with and without the filters.
DAIF_SOURCE = r"""
.text
.globl _start
_start:
    set_up_stack
    gic_init
    gic_enable PROBE_INTID
    mov x0, #0xf0
    gic_pmr x0
    msr daifset, #2
    ldr x1, =PROBE_BASE
    mov w0, #1
    str w0, [x1, #PROBE_IRQ_LEVEL]
    mrs x2, daif                    // I set
    mov x9, #20000
1:  msr daif, x2                    // stays masked: nothing to deliver yet
    subs x9, x9, #1
    b.ne 1b
    report_imm 0x1
    mov x3, #0
    msr daif, x3                    // unmask: the IRQ must be taken right after this
    report_imm 0x2                  // not reached
    system_off

irq_handler:
    report_imm 0x3
    gic_ack x19
    report x19
    system_off

    vector_table irq=irq_handler
    stack_area
"""


@pytest.mark.parametrize("filters", ["native", "python"])
def test_a_masked_interrupt_is_taken_at_the_msr_daif_that_unmasks_it(filters, monkeypatch):
    monkeypatch.setenv(hook_filter.DISABLE_VARIABLE, "1" if filters == "native" else "0")
    hook_filter.native_library.cache_clear()
    try:
        run = GuestRun(gic_macros(3) + DAIF_SOURCE)
        vm_exit = run.run()
    finally:
        hook_filter.native_library.cache_clear()
    assert vm_exit.reason is ExitReason.POWER_OFF, vm_exit.describe()
    assert run.reports == [0x1, 0x3, PROBE_GSI + layout.SPI_START]
    stats = run.vm.stats()
    if filters == "native":
        assert stats["msr-answered-natively"] >= 19_000 and stats["msr-hook"] < 1_000
    else:
        assert stats["msr-answered-natively"] == 0 and stats["msr-hook"] >= 20_000

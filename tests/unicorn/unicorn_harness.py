"""Running small assembled guest programs on the Unicorn backend, without a kernel.

A `GuestRun` assembles `PRELUDE` + the test's source at the start of guest RAM, builds a
machine with the chosen GIC and a `ProbeDevice` (the guest reports values by storing to
it, and drives its interrupt line), runs it on a thread with a time limit and returns the
`VmExit`. All numbers in the prelude come from petard's own constants.
"""

from __future__ import annotations

import threading
import time

from guestasm import assemble

from petard.backends.unicorn.backend import UnicornBackend
from petard.core import layout
from petard.core.arch import psci
from petard.core.arch.pstate import BOOT_PSTATE
from petard.core.backend import BootRegisters, MachineDescription, VmExit
from petard.core.irq import IrqLine
from petard.core.machine import gic_description, vcpu_mpidrs
from petard.core.memory import GuestMemory
from petard.core.mmio import MmioBus

PROBE_BASE = layout.VIRTIO_MMIO_START
PROBE_GSI = 5
PROBE_REPORT = 0x0          # 8-byte store: append the value to ProbeDevice.reports
# Unicorn splits an 8-byte MMIO store into two 4-byte ones (low word first).
_PROBE_REPORT_HIGH = PROBE_REPORT + 4
PROBE_IRQ_LEVEL = 0x8       # store 1 / 0: raise / lower the probe's interrupt line
PROBE_DMA = 0x10            # store: run ProbeDevice.on_dma (the test's host-side writes to RAM)
UNEXPECTED_VECTOR = 0xBAD0_0000     # reported (plus the vector offset) by unexpected exceptions


class ProbeDevice:
    def __init__(self, line: IrqLine):
        self.line = line
        self.reports: list[int] = []
        self.report_times: list[float] = []
        self.on_dma = lambda: None
        self._low_word = 0

    def mmio_read(self, offset: int, size: int) -> int:
        return 0

    def _append(self, value: int) -> None:
        self.reports.append(value)
        self.report_times.append(time.monotonic())

    def mmio_write(self, offset: int, size: int, value: int) -> None:
        if offset == PROBE_REPORT and size == 8:
            self._append(value)
        elif offset == PROBE_REPORT:
            self._low_word = value
        elif offset == _PROBE_REPORT_HIGH:
            self._append(value << 32 | self._low_word)
        elif offset == PROBE_IRQ_LEVEL:
            self.line.set_level(bool(value))
        elif offset == PROBE_DMA:
            self.on_dma()


def prelude(gic_version: int, vcpu_count: int) -> str:
    gic = gic_description(gic_version, vcpu_count)
    constants = {
        "PROBE_BASE": PROBE_BASE, "PROBE_REPORT": PROBE_REPORT,
        "PROBE_IRQ_LEVEL": PROBE_IRQ_LEVEL, "PROBE_INTID": PROBE_GSI + layout.SPI_START,
        "PROBE_DMA": PROBE_DMA,
        "UNEXPECTED_VECTOR": UNEXPECTED_VECTOR,
        "GICD_BASE": gic.distributor_base, "GICR_BASE": gic.redistributor_base,
        "GICC_BASE": gic.cpu_interface_base,
        "PSCI_VERSION": psci.PSCI_VERSION, "PSCI_FEATURES": psci.PSCI_FEATURES,
        "PSCI_CPU_ON": psci.PSCI_CPU_ON_64, "PSCI_CPU_OFF": psci.PSCI_CPU_OFF,
        "PSCI_AFFINITY_INFO": psci.PSCI_AFFINITY_INFO_64,
        "PSCI_MIGRATE_INFO_TYPE": psci.PSCI_MIGRATE_INFO_TYPE,
        "PSCI_SYSTEM_OFF": psci.PSCI_SYSTEM_OFF, "PSCI_SYSTEM_RESET": psci.PSCI_SYSTEM_RESET,
        "PSCI_CPU_SUSPEND": psci.PSCI_CPU_SUSPEND_64,
    }
    lines = [f".equ {name}, {value:#x}" for name, value in constants.items()]
    lines.append(_MACROS)
    return "\n".join(lines) + "\n"


_MACROS = r"""
// report Xn: append Xn to the probe's reports (clobbers x28)
.macro report reg
    ldr x28, =PROBE_BASE
    str \reg, [x28, #PROBE_REPORT]
.endm
.macro report_imm value
    ldr x27, =\value
    report x27
.endm
// psci_call FID: x0 = FID, hvc #0; the result is in x0
.macro psci_call fid
    ldr x0, =\fid
    hvc #0
.endm
.macro system_off
    psci_call PSCI_SYSTEM_OFF
1:  b 1b
.endm
.macro vector_entry target
    .balign 128
    b \target
.endm
// A vector table at label `vectors`: the four current-EL-with-SPx entries and the
// lower-EL AArch64 ones go to the given handlers, the rest to `unexpected_exception`.
.macro vector_table sync=unexpected_exception, irq=unexpected_exception, lower_sync=unexpected_exception, lower_irq=unexpected_exception
    .balign 2048
vectors:
    .irp slot, 0, 1, 2, 3
    vector_entry unexpected_exception
    .endr
    vector_entry \sync
    vector_entry \irq
    vector_entry unexpected_exception
    vector_entry unexpected_exception
    vector_entry \lower_sync
    vector_entry \lower_irq
    .irp slot, 0, 1
    vector_entry unexpected_exception
    .endr
    .irp slot, 0, 1, 2, 3
    vector_entry unexpected_exception
    .endr
unexpected_exception:
    ldr x0, =UNEXPECTED_VECTOR
    report x0
    mrs x0, esr_el1
    report x0
    system_off
.endm
.macro install_vectors
    ldr x0, =vectors
    msr vbar_el1, x0
    isb
.endm
// set_up_stack: SP at `stack_top` (see stack_area), vectors installed (clobbers x0)
.macro set_up_stack
    ldr x0, =stack_top
    mov sp, x0
    install_vectors
.endm
// stack_area: a 4 KiB stack in .data, ending at `stack_top`
.macro stack_area
.data
.balign 16
    .fill 512, 8, 0
stack_top:
.endm
"""


class GuestRun:
    """One assembled program on a fresh machine (the program starts at the RAM base)."""

    def __init__(self, source: str, gic_version: int = 3, vcpu_count: int = 1,
                 mem_mib: int = 16):
        self.program = assemble(prelude(gic_version, vcpu_count) + source, layout.DRAM_START)
        self.memory = GuestMemory(layout.DRAM_START, mem_mib * layout.MiB)
        self.memory.write(layout.DRAM_START, self.program.code)
        self.bus = MmioBus()
        self.line = IrqLine(PROBE_GSI)
        self.probe = ProbeDevice(self.line)
        self.bus.add(PROBE_BASE, layout.MMIO_LEN, self.probe, "probe")
        self.description = MachineDescription(
            memory=self.memory, mmio_bus=self.bus, vcpu_count=vcpu_count,
            vcpu_mpidrs=vcpu_mpidrs(vcpu_count),
            gic=gic_description(gic_version, vcpu_count),
            boot=BootRegisters(pc=self.program.address("_start"), x0=0, pstate=BOOT_PSTATE))
        self.vm = UnicornBackend().create_vm(self.description)
        self.line.connect(self.vm.interrupt_sink)
        self.exit: VmExit | None = None
        self.wall_seconds = 0.0
        self.cpu_seconds = 0.0          # CPU time of the thread that ran the vCPUs

    @property
    def reports(self) -> list[int]:
        return self.probe.reports

    def start(self) -> threading.Thread:
        def target():
            started, cpu_started = time.monotonic(), time.thread_time()
            self.exit = self.vm.run()
            self.wall_seconds = time.monotonic() - started
            self.cpu_seconds = time.thread_time() - cpu_started
        thread = threading.Thread(target=target, daemon=True)
        thread.start()
        return thread

    def run(self, timeout: float = 20.0) -> VmExit:
        thread = self.start()
        thread.join(timeout)
        if thread.is_alive():
            self.vm.stop()
            thread.join(5)
            raise AssertionError(f"guest did not finish within {timeout} s; reports so far: "
                                 f"{[hex(v) for v in self.reports]}")
        return self.exit

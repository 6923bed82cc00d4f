"""One KVM vCPU: its fd, its host thread and the KVM_RUN loop that serves its exits.

The loop is the hot path of the KVM backend: one `struct.unpack_from` decodes the exit
reason and the MMIO fields together; MMIO goes straight to the device's bus region (under
the VM's bus lock). Any other exit ends the loop with a `VmExit` value
(`KVM_EXIT_SYSTEM_EVENT` the way Firecracker does, anything unexpected as a fatal error
with the vCPU's registers), which the thread hands to the run control; the vCPU never
calls into the VM. The kick signal is blocked in userspace and unblocked only inside
KVM_RUN (KVM_SET_SIGNAL_MASK), so a kick makes KVM_RUN return EINTR without any Python
signal handler.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import signal
import threading

from petard.core import logger as vmm_logging
from petard.core.backend import ExitReason, VmExit
from petard.core.layout import PAGE_SHIFT
from petard.core.mmio import MmioBus

from . import kvm_abi as abi
from .control import RunControl
from .ioctls import KvmVcpuFd, thread_blocked_signals
from .vcpu_state import read_vcpu_state

log = vmm_logging.get("vcpu")

KICK_SIGNAL = signal.SIGRTMIN + 2      # private to the vCPU threads, never handled in Python


def system_event_exit(event_type: int, data: list[int]) -> VmExit:
    """What a KVM_EXIT_SYSTEM_EVENT means for the VMM (Firecracker: SHUTDOWN and RESET stop
    it cleanly, anything else is an error)."""
    if event_type == abi.KVM_SYSTEM_EVENT_SHUTDOWN:
        return VmExit(ExitReason.POWER_OFF, "guest powered off (PSCI SYSTEM_OFF)")
    if event_type == abi.KVM_SYSTEM_EVENT_RESET:
        return VmExit(ExitReason.RESET, "guest asked for a reset (PSCI SYSTEM_RESET)")
    return VmExit(ExitReason.FATAL_ERROR, f"unexpected KVM system event type {event_type}, data {data}")


class KvmVcpu:
    """One vCPU fd and the loop its thread runs."""

    def __init__(self, fd: KvmVcpuFd, control: RunControl, bus: MmioBus, bus_lock: threading.Lock):
        self.fd = fd
        self.index = fd.index
        self.name = f"fc_vcpu {self.index}"
        self.control = control
        self.bus = bus
        self.bus_lock = bus_lock
        self.thread: threading.Thread | None = None
        self.exit_count = 0

    def start(self) -> None:
        self.thread = threading.Thread(target=self._thread_main, name=self.name, daemon=True)
        self.thread.start()

    def kick(self) -> None:
        """Make a KVM_RUN in progress (or the next one) return EINTR soon."""
        self.fd.set_immediate_exit(True)
        thread = self.thread
        if thread is not None and thread.is_alive() and thread.ident is not None:
            try:
                signal.pthread_kill(thread.ident, KICK_SIGNAL)
            except ProcessLookupError:
                pass

    def _thread_main(self) -> None:
        vm_exit = None
        signal.pthread_sigmask(signal.SIG_BLOCK, {KICK_SIGNAL})
        try:
            self.fd.set_signal_mask(thread_blocked_signals() - {KICK_SIGNAL})
            vm_exit = self._loop()
        except Exception as error:  # a broken loop must end the VM, never hang it
            logging.getLogger(__name__).exception("vCPU %d loop failed", self.index)
            vm_exit = VmExit(ExitReason.FATAL_ERROR, f"vCPU {self.index} loop failed: {error}",
                             vcpu_index=self.index)
        finally:
            self.control.thread_ended(f"vCPU {self.index}", vm_exit)

    @staticmethod
    def _consume_kicks() -> None:
        while signal.sigtimedwait({KICK_SIGNAL}, 0) is not None:
            pass

    def _loop(self) -> VmExit | None:
        """KVM_RUN until an exit that ends the VM (returned) or a stop request (None)."""
        control = self.control
        fd = self.fd.fd
        run = self.fd.run
        ioctl = fcntl.ioctl
        kvm_run_request = abi.KVM_RUN
        exit_of = abi.kvm_run_exit_and_mmio.unpack_from
        data_offset = abi.KVM_RUN_MMIO_DATA_OFFSET
        exit_mmio = abi.KVM_EXIT_MMIO
        size_masks = {size: (1 << (8 * size)) - 1 for size in (1, 2, 4, 8)}
        lock = self.bus_lock.acquire
        unlock = self.bus_lock.release
        bus_read = self.bus.read
        bus_write = self.bus.write
        regions_by_page = self.bus.page_table()
        exits = 0
        try:
            while True:
                if control.control_requested:
                    if control.stop_requested:
                        return None
                    if control.pause_requested:
                        self._park()
                        continue
                try:
                    ioctl(fd, kvm_run_request, 0)
                except OSError as error:
                    if error.errno == errno.EINTR or error.errno == errno.EAGAIN:
                        self._consume_kicks()
                        continue
                    raise
                exits += 1
                reason, address, data, length, is_write = exit_of(run)
                if reason == exit_mmio:
                    region = regions_by_page.get(address >> PAGE_SHIFT)
                    if is_write:
                        lock()
                        try:
                            if region is not None:
                                region.write(address - region.base, length, data & size_masks[length])
                            else:
                                bus_write(address, length, data & size_masks[length])
                        finally:
                            unlock()
                    else:
                        lock()
                        try:
                            if region is not None:
                                value = region.read(address - region.base, length)
                            else:
                                value = bus_read(address, length)
                        finally:
                            unlock()
                        run[data_offset:data_offset + length] = (value & size_masks[length]).to_bytes(length, "little")
                    continue
                if reason == abi.KVM_EXIT_INTR:
                    continue
                return self._exit_value(reason)
        finally:
            self.exit_count += exits

    def _exit_value(self, reason: int) -> VmExit:
        """What a non-MMIO exit means for the VM (the loop ends with it)."""
        run = self.fd.run
        if reason == abi.KVM_EXIT_SYSTEM_EVENT:
            event_type, ndata = abi.kvm_run_system_event.unpack_from(run, abi.KVM_RUN_EXIT_UNION_OFFSET)
            ndata = min(ndata, abi.KVM_SYSTEM_EVENT_MAX_DATA)
            data = [int.from_bytes(run[abi.KVM_RUN_SYSTEM_EVENT_DATA_OFFSET + 8 * i:
                                       abi.KVM_RUN_SYSTEM_EVENT_DATA_OFFSET + 8 * i + 8], "little")
                    for i in range(ndata)]
            log.info("Received KVM_SYSTEM_EVENT: type: %d, event: [%s]",
                     event_type, ", ".join(str(value) for value in data))
            vm_exit = system_event_exit(event_type, data)
            return self._fatal(vm_exit.message) if vm_exit.reason is ExitReason.FATAL_ERROR else vm_exit
        return self._fatal(self._describe_exit(reason))

    def _describe_exit(self, reason: int) -> str:
        run = self.fd.run
        name = abi.EXIT_REASON_NAMES.get(reason, f"exit reason {reason}")
        union = abi.KVM_RUN_EXIT_UNION_OFFSET
        if reason == abi.KVM_EXIT_FAIL_ENTRY:
            failure, cpu = abi.kvm_run_fail_entry.unpack_from(run, union)
            return f"{name}: hardware_entry_failure_reason {failure:#x} on cpu {cpu}"
        if reason == abi.KVM_EXIT_INTERNAL_ERROR:
            suberror, ndata = abi.kvm_run_internal.unpack_from(run, union)
            return f"{name}: suberror {suberror}, ndata {ndata}"
        if reason == abi.KVM_EXIT_ARM_NISV:
            esr_iss, fault_ipa = abi.kvm_run_arm_nisv.unpack_from(run, union)
            return f"{name}: data abort KVM cannot decode, ESR ISS {esr_iss:#x} at IPA {fault_ipa:#x}"
        return f"unexpected {name}"

    def _fatal(self, message: str) -> VmExit:
        try:
            registers = read_vcpu_state(self.fd).report_registers()
        except OSError:
            registers = {}
        return VmExit(ExitReason.FATAL_ERROR, message, vcpu_index=self.index, registers=registers)

    def _park(self) -> None:
        """Settle the vCPU (complete a pending MMIO load) and wait for resume or stop."""
        self.fd.set_immediate_exit(True)
        try:
            self.fd.run_once()
        except OSError as error:
            if error.errno not in (errno.EINTR, errno.EAGAIN):
                raise
        self._consume_kicks()
        self.control.park_until_resumed()
        self.fd.set_immediate_exit(False)

"""The firmware side of PSCI over HVC: power management calls the guest makes.

PSCI 1.0 subset: VERSION, FEATURES, CPU_ON, CPU_OFF, AFFINITY_INFO, MIGRATE_INFO_TYPE,
SYSTEM_OFF, SYSTEM_RESET. Arguments are in x0 (function id) .. x3, the result goes to x0.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from petard.core.arch import psci
from petard.core.backend import ExitReason, VmExit

from . import cpu
from .vcpu import PowerState

if TYPE_CHECKING:
    from .vcpu import UnicornVcpu
    from .vm import UnicornVm

SUPPORTED_FUNCTIONS = frozenset({
    psci.PSCI_VERSION, psci.PSCI_FEATURES, psci.PSCI_CPU_OFF, psci.PSCI_CPU_ON_32,
    psci.PSCI_CPU_ON_64, psci.PSCI_AFFINITY_INFO_32, psci.PSCI_AFFINITY_INFO_64,
    psci.PSCI_MIGRATE_INFO_TYPE, psci.PSCI_SYSTEM_OFF, psci.PSCI_SYSTEM_RESET,
})
_AFFINITY_MASK = 0xFF_00FF_FFFF
_FUNCTION_ID_MASK = 0xFFFF_FFFF
_ARGUMENTS = cpu.RegisterBatch(cpu.X_REGISTERS[:4])     # function id, arguments 1-3


class PsciFirmware:
    def __init__(self, vm: UnicornVm):
        self.vm = vm
        self.calls: list[int] = []

    def _find(self, mpidr: int) -> UnicornVcpu | None:
        for vcpu in self.vm.vcpus:
            if vcpu.mpidr & _AFFINITY_MASK == mpidr & _AFFINITY_MASK:
                return vcpu
        return None

    def call(self, caller: UnicornVcpu) -> None:
        """Handle the HVC the caller just made (its PC is already past the HVC)."""
        uc = caller.uc
        function, arg1, arg2, arg3 = _ARGUMENTS.read(uc)
        function &= _FUNCTION_ID_MASK
        self.calls.append(function)
        result = self._dispatch(caller, function, arg1, arg2, arg3)
        if result is not None:
            cpu.write_reg(uc, cpu.X_REGISTERS[0], psci.to_register(result))

    def _dispatch(self, caller: UnicornVcpu, function: int, arg1: int, arg2: int,
                  arg3: int) -> int | None:
        if function == psci.PSCI_VERSION:
            return psci.PSCI_VERSION_1_0
        if function == psci.PSCI_FEATURES:
            return psci.PSCI_RET_SUCCESS if arg1 & _FUNCTION_ID_MASK in SUPPORTED_FUNCTIONS \
                else psci.PSCI_RET_NOT_SUPPORTED
        if function == psci.PSCI_MIGRATE_INFO_TYPE:
            return psci.MIGRATE_INFO_TOS_NOT_PRESENT
        if function in (psci.PSCI_CPU_ON_64, psci.PSCI_CPU_ON_32):
            target = self._find(arg1)
            if target is None:
                return psci.PSCI_RET_INVALID_PARAMETERS
            if target.power is PowerState.ON:
                return psci.PSCI_RET_ALREADY_ON
            if target.power is PowerState.ON_PENDING:
                return psci.PSCI_RET_ON_PENDING
            if not self.vm.memory.contains(arg2, 4):
                return psci.PSCI_RET_INVALID_ADDRESS
            target.power_on(arg2, arg3)
            caller.request_stop()           # let the target run soon (round-robin)
            self.vm.wake()
            return psci.PSCI_RET_SUCCESS
        if function in (psci.PSCI_AFFINITY_INFO_64, psci.PSCI_AFFINITY_INFO_32):
            if arg2 != 0:                       # only level 0 (one vCPU) is described
                return psci.PSCI_RET_INVALID_PARAMETERS
            target = self._find(arg1)
            if target is None:
                return psci.PSCI_RET_INVALID_PARAMETERS
            if target is not caller:
                caller.request_stop()       # the caller is probably polling: yield
            return {PowerState.ON: psci.AFFINITY_ON, PowerState.OFF: psci.AFFINITY_OFF,
                    PowerState.ON_PENDING: psci.AFFINITY_ON_PENDING}[target.power]
        if function == psci.PSCI_CPU_OFF:
            caller.power_off()
            caller.stopped_by_vmm = True
            caller.uc.emu_stop()
            return None
        if function == psci.PSCI_SYSTEM_OFF:
            self._system_event(caller, ExitReason.POWER_OFF, "guest requested PSCI SYSTEM_OFF")
            return None
        if function == psci.PSCI_SYSTEM_RESET:
            self._system_event(caller, ExitReason.RESET, "guest requested PSCI SYSTEM_RESET")
            return None
        return psci.PSCI_RET_NOT_SUPPORTED

    def _system_event(self, caller: UnicornVcpu, reason: ExitReason, message: str) -> None:
        caller.exit = VmExit(reason, message, caller.index)
        caller.stopped_by_vmm = True
        caller.uc.emu_stop()


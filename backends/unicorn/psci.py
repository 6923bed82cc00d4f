"""The firmware side of PSCI over HVC: power management calls the guest makes.

PSCI 1.0 subset: VERSION, FEATURES, CPU_ON, CPU_OFF, AFFINITY_INFO, MIGRATE_INFO_TYPE,
SYSTEM_OFF, SYSTEM_RESET. The calling vCPU reads the function id and arguments from x0-x3
and hands them here; the answer is a `PsciOutcome`: the value for x0 (None for calls that
do not return) and what the call means for the caller's run slice. Nothing here touches a
register or stops a vCPU.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from petard.core.arch import psci
from petard.core.arch.sysregs import MPIDR_AFFINITY_MASK

from .ports import PowerState, PowerTarget, StopReason

SUPPORTED_FUNCTIONS = frozenset({
    psci.PSCI_VERSION, psci.PSCI_FEATURES, psci.PSCI_CPU_OFF, psci.PSCI_CPU_ON_32,
    psci.PSCI_CPU_ON_64, psci.PSCI_AFFINITY_INFO_32, psci.PSCI_AFFINITY_INFO_64,
    psci.PSCI_MIGRATE_INFO_TYPE, psci.PSCI_SYSTEM_OFF, psci.PSCI_SYSTEM_RESET,
})
FUNCTION_ID_MASK = 0xFFFF_FFFF


@dataclass(frozen=True)
class PsciOutcome:
    result: int | None = None               # x0 (a signed PSCI value), None: the call does not return
    stop: StopReason | None = None          # the caller stops now for this reason
    yield_soon: bool = False                # the caller should let the others run soon


class PsciFirmware:
    def __init__(self, cpus: Sequence[PowerTarget], memory_contains: Callable[[int, int], bool]):
        self.cpus = cpus
        self.memory_contains = memory_contains
        self.calls: list[int] = []

    def _find(self, mpidr: int) -> PowerTarget | None:
        for target in self.cpus:
            if target.mpidr & MPIDR_AFFINITY_MASK == mpidr & MPIDR_AFFINITY_MASK:
                return target
        return None

    def call(self, caller: PowerTarget, function: int, arg1: int, arg2: int, arg3: int) -> PsciOutcome:
        function &= FUNCTION_ID_MASK
        self.calls.append(function)
        if function == psci.PSCI_VERSION:
            return PsciOutcome(psci.PSCI_VERSION_1_0)
        if function == psci.PSCI_FEATURES:
            supported = arg1 & FUNCTION_ID_MASK in SUPPORTED_FUNCTIONS
            return PsciOutcome(psci.PSCI_RET_SUCCESS if supported else psci.PSCI_RET_NOT_SUPPORTED)
        if function == psci.PSCI_MIGRATE_INFO_TYPE:
            return PsciOutcome(psci.MIGRATE_INFO_TOS_NOT_PRESENT)
        if function in (psci.PSCI_CPU_ON_64, psci.PSCI_CPU_ON_32):
            return self._cpu_on(arg1, arg2, arg3)
        if function in (psci.PSCI_AFFINITY_INFO_64, psci.PSCI_AFFINITY_INFO_32):
            return self._affinity_info(caller, arg1, arg2)
        if function == psci.PSCI_CPU_OFF:
            return PsciOutcome(stop=StopReason.CPU_OFF)
        if function == psci.PSCI_SYSTEM_OFF:
            return PsciOutcome(stop=StopReason.SYSTEM_OFF)
        if function == psci.PSCI_SYSTEM_RESET:
            return PsciOutcome(stop=StopReason.SYSTEM_RESET)
        return PsciOutcome(psci.PSCI_RET_NOT_SUPPORTED)

    def _cpu_on(self, mpidr: int, entry: int, context_id: int) -> PsciOutcome:
        target = self._find(mpidr)
        if target is None:
            return PsciOutcome(psci.PSCI_RET_INVALID_PARAMETERS)
        if target.power is PowerState.ON:
            return PsciOutcome(psci.PSCI_RET_ALREADY_ON)
        if target.power is PowerState.ON_PENDING:
            return PsciOutcome(psci.PSCI_RET_ON_PENDING)
        if not self.memory_contains(entry, 4):
            return PsciOutcome(psci.PSCI_RET_INVALID_ADDRESS)
        target.power_on(entry, context_id)
        return PsciOutcome(psci.PSCI_RET_SUCCESS, yield_soon=True)     # let the target run soon

    def _affinity_info(self, caller: PowerTarget, mpidr: int, lowest_level: int) -> PsciOutcome:
        if lowest_level != 0:                   # only level 0 (one vCPU) is described
            return PsciOutcome(psci.PSCI_RET_INVALID_PARAMETERS)
        target = self._find(mpidr)
        if target is None:
            return PsciOutcome(psci.PSCI_RET_INVALID_PARAMETERS)
        state = {PowerState.ON: psci.AFFINITY_ON, PowerState.OFF: psci.AFFINITY_OFF,
                 PowerState.ON_PENDING: psci.AFFINITY_ON_PENDING}[target.power]
        return PsciOutcome(state, yield_soon=target is not caller)     # the caller is probably polling

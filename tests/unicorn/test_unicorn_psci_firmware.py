"""The PSCI firmware on its own: calls in, `PsciOutcome` values out, with plain objects as the
vCPUs (it needs only their MPIDR, power state and power_on) and no engine at all."""

from __future__ import annotations

from petard.backends.unicorn.ports import PowerState, StopReason
from petard.backends.unicorn.psci import PsciFirmware, PsciOutcome
from petard.core.arch import psci


class Cpu:
    def __init__(self, mpidr: int, power: PowerState = PowerState.OFF):
        self.mpidr = mpidr
        self.power = power
        self.started_at: tuple[int, int] | None = None

    def power_on(self, entry: int, x0: int) -> None:
        self.started_at = (entry, x0)
        self.power = PowerState.ON_PENDING


RAM = range(0x8000_0000, 0x9000_0000)


def firmware(*cpus: Cpu) -> PsciFirmware:
    return PsciFirmware(list(cpus), lambda address, size: address in RAM and address + size - 1 in RAM)


def test_cpu_on_starts_a_powered_off_cpu_and_asks_the_caller_to_give_way():
    boot, second = Cpu(0, PowerState.ON), Cpu(1)
    outcome = firmware(boot, second).call(boot, psci.PSCI_CPU_ON_64, 1, 0x8000_1000, 0x42)
    assert outcome == PsciOutcome(psci.PSCI_RET_SUCCESS, yield_soon=True)
    assert second.started_at == (0x8000_1000, 0x42) and second.power is PowerState.ON_PENDING


def test_cpu_on_refusals():
    boot, running, starting = Cpu(0, PowerState.ON), Cpu(1, PowerState.ON), Cpu(2, PowerState.ON_PENDING)
    off = Cpu(3)
    firmware_ = firmware(boot, running, starting, off)
    assert firmware_.call(boot, psci.PSCI_CPU_ON_64, 1, 0x8000_0000, 0).result == psci.PSCI_RET_ALREADY_ON
    assert firmware_.call(boot, psci.PSCI_CPU_ON_64, 2, 0x8000_0000, 0).result == psci.PSCI_RET_ON_PENDING
    assert firmware_.call(boot, psci.PSCI_CPU_ON_64, 9, 0x8000_0000, 0).result == psci.PSCI_RET_INVALID_PARAMETERS
    assert firmware_.call(boot, psci.PSCI_CPU_ON_64, 3, 0x1000, 0).result == psci.PSCI_RET_INVALID_ADDRESS
    assert off.started_at is None


def test_affinity_info_reports_power_states_and_a_poller_gives_way():
    boot, starting = Cpu(0, PowerState.ON), Cpu(1, PowerState.ON_PENDING)
    firmware_ = firmware(boot, starting)
    assert firmware_.call(boot, psci.PSCI_AFFINITY_INFO_64, 1, 0, 0) == PsciOutcome(psci.AFFINITY_ON_PENDING,
                                                                                       yield_soon=True)
    assert firmware_.call(boot, psci.PSCI_AFFINITY_INFO_64, 0, 0, 0) == PsciOutcome(psci.AFFINITY_ON)
    assert firmware_.call(boot, psci.PSCI_AFFINITY_INFO_64, 0, 1, 0).result == psci.PSCI_RET_INVALID_PARAMETERS


def test_the_calls_that_do_not_return_name_why_the_caller_stops():
    boot = Cpu(0, PowerState.ON)
    firmware_ = firmware(boot)
    assert firmware_.call(boot, psci.PSCI_CPU_OFF, 0, 0, 0) == PsciOutcome(stop=StopReason.CPU_OFF)
    assert firmware_.call(boot, psci.PSCI_SYSTEM_OFF, 0, 0, 0) == PsciOutcome(stop=StopReason.SYSTEM_OFF)
    assert firmware_.call(boot, psci.PSCI_SYSTEM_RESET, 0, 0, 0) == PsciOutcome(stop=StopReason.SYSTEM_RESET)
    assert boot.power is PowerState.ON       # the VM's loop, not the firmware, powers it off


def test_version_features_and_unknown_functions():
    boot = Cpu(0, PowerState.ON)
    firmware_ = firmware(boot)
    assert firmware_.call(boot, psci.PSCI_VERSION, 0, 0, 0).result == psci.PSCI_VERSION_1_0
    assert firmware_.call(boot, psci.PSCI_FEATURES, psci.PSCI_CPU_ON_64, 0, 0).result == psci.PSCI_RET_SUCCESS
    assert firmware_.call(boot, psci.PSCI_FEATURES, psci.PSCI_CPU_SUSPEND_64, 0, 0).result \
        == psci.PSCI_RET_NOT_SUPPORTED
    assert firmware_.call(boot, 0xC400_00FF, 0, 0, 0).result == psci.PSCI_RET_NOT_SUPPORTED
    assert firmware_.calls[0] == psci.PSCI_VERSION

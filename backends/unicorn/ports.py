"""What the parts of the Unicorn backend need of each other, and nothing more.

The bottom floor of the backend: the named reasons a vCPU stops for (`StopReason`, handed to
the VM's loop as a `VcpuStop` value), a vCPU's power state, and small protocols for the few
things the shared engine, PSCI and the scheduler use of a vCPU. No module here imports a
sibling, so every helper can be read, and tested, with this file alone beside it.
"""

from __future__ import annotations

import enum
from collections import Counter
from dataclasses import dataclass
from typing import Any, Protocol


class PowerState(enum.Enum):
    OFF = "off"
    ON_PENDING = "on-pending"       # PSCI CPU_ON accepted, starts at its next turn
    ON = "on"


class StopReason(enum.Enum):
    """Why a vCPU's run slice ended. The VM's loop alone decides what each one means."""

    DEADLINE = "deadline"           # a safe point after the slice deadline or a stop request
    WFI = "wfi"                     # emu_start returned after a WFI
    IRQ_UNMASKED = "irq-unmasked"   # the guest unmasked IRQs with an interrupt waiting
    SPIN_YIELD = "spin-yield"       # a patched spin hint while another vCPU could run
    CPU_OFF = "cpu-off"             # PSCI CPU_OFF
    SYSTEM_OFF = "system-off"       # PSCI SYSTEM_OFF
    SYSTEM_RESET = "system-reset"   # PSCI SYSTEM_RESET
    FATAL = "fatal"                 # the guest or the emulator failed (see VcpuStop.message)
    UNEXPLAINED = "unexplained"     # emu_start returned on its own, not after a WFI


# Reasons that stop a vCPU for good, beside which a later "stop at the next safe point" is moot.
FINAL_REASONS = frozenset({StopReason.CPU_OFF, StopReason.SYSTEM_OFF, StopReason.SYSTEM_RESET,
                           StopReason.FATAL})


@dataclass(frozen=True)
class VcpuStop:
    reason: StopReason
    message: str = ""


class HookTarget(Protocol):
    """The vCPU whose state the shared engine holds, as its hooks see it."""

    index: int
    context: Any                    # the saved Unicorn context swapped in and out
    own_stop_deadline_ns: int
    own_irq_wanted: bool
    stats: Counter

    def on_exception(self, uc: Any, intno: int) -> None: ...
    def on_msr(self, uc: Any, reg: int, cp: Any) -> bool: ...
    def on_user_block(self) -> None: ...
    def on_idle_exit(self) -> None: ...
    def fail(self, message: str) -> None: ...


class PowerTarget(Protocol):
    """A vCPU as PSCI's CPU_ON and AFFINITY_INFO see it."""

    mpidr: int
    power: PowerState

    def power_on(self, entry: int, x0: int) -> None: ...


class SchedulableVcpu(Protocol):
    """A vCPU as the scheduler sees it."""

    index: int
    power: PowerState
    halted: bool
    kicked: bool
    irq_wanted: bool

    def request_stop(self) -> None: ...
    def timer_deadline_ns(self) -> int | None: ...

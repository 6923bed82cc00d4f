"""The arm64 generic timer of one vCPU, emulated behind the MSR hook.

Unicorn counts CNTVCT/CNTPCT from the host's monotonic clock (62.5 MHz, 16 ns per tick) but
discards guest writes to the timer registers and never raises the timer interrupt. This
module emulates writes to CNTV_/CNTP_ CTL/CVAL/TVAL, keeps the registers Unicorn shows the
guest (CTL.ISTATUS, CVAL) up to date with raw writes, and computes the PPI levels.

The virtual counter runs `virtual_offset` ticks behind the physical one (CNTVOFF_EL2, which
Unicorn applies to CNTVCT_EL0 itself): zero from boot, and set by a state restore so that
the guest's virtual time goes on from the count it had when the state was saved.
"""

import time

from unicorn import Uc

from petard.core import layout
from petard.core.arch import sysregs
from petard.core.arch.sysregs import SysReg
from petard.core.vcpu_state import TimerState

from . import cpu

COUNTER_FREQUENCY_HZ = 62_500_000       # what Unicorn's CNTFRQ_EL0 reports
NANOSECONDS_PER_TICK = 1_000_000_000 // COUNTER_FREQUENCY_HZ
_U64 = (1 << 64) - 1
# The registers whose guest writes this module emulates -> (channel, what is written).
_WRITE_TARGETS = {
    sysregs.CNTV_CTL_EL0: ("virtual", "ctl"),
    sysregs.CNTV_CVAL_EL0: ("virtual", "cval"),
    sysregs.CNTV_TVAL_EL0: ("virtual", "tval"),
    sysregs.CNTP_CTL_EL0: ("physical", "ctl"),
    sysregs.CNTP_CVAL_EL0: ("physical", "cval"),
    sysregs.CNTP_TVAL_EL0: ("physical", "tval"),
}
WRITTEN_REGISTERS = tuple(_WRITE_TARGETS)


def counter_now() -> int:
    """The value the guest reads from CNTVCT_EL0 / CNTPCT_EL0 right now."""
    return time.monotonic_ns() // NANOSECONDS_PER_TICK


def ticks_to_monotonic_ns(ticks: int) -> int:
    return ticks * NANOSECONDS_PER_TICK


def _signed32(value: int) -> int:
    value &= 0xFFFF_FFFF
    return value - (1 << 32) if value & 0x8000_0000 else value


class _Channel:
    __slots__ = ("name", "intid", "ctl_reg", "cval_reg", "ctl", "cval", "level", "offset")

    def __init__(self, name: str, intid: int, ctl_reg: SysReg, cval_reg: SysReg):
        self.name = name
        self.intid = intid
        self.ctl_reg = ctl_reg
        self.cval_reg = cval_reg
        self.ctl = 0
        self.cval = 0
        self.level = False
        self.offset = 0             # ticks this channel's counter runs behind the physical one

    def fired(self, now: int) -> bool:
        """`now` is the physical count."""
        return bool(self.ctl & sysregs.CNT_CTL_ENABLE) and now - self.offset >= self.cval


class GenericTimer:
    def __init__(self):
        self.virtual = _Channel("virtual", layout.TIMER_VIRT_INTID,
                                sysregs.CNTV_CTL_EL0, sysregs.CNTV_CVAL_EL0)
        self.physical = _Channel("physical", layout.TIMER_NONSECURE_PHYS_INTID,
                                 sysregs.CNTP_CTL_EL0, sysregs.CNTP_CVAL_EL0)
        self.channels = (self.virtual, self.physical)
        # MSR target -> (channel, what)
        self.write_targets = {reg: (getattr(self, channel), what)
                              for reg, (channel, what) in _WRITE_TARGETS.items()}
        self.write_count = 0

    def handles(self, reg: tuple) -> bool:
        return reg in self.write_targets

    def write(self, uc: Uc, reg: tuple, value: int) -> tuple[int, bool]:
        """Emulate a guest MSR to a timer register; returns the channel's (intid, level)."""
        self.write_count += 1
        channel, what = self.write_targets[reg]
        if what == "ctl":
            channel.ctl = value & (sysregs.CNT_CTL_ENABLE | sysregs.CNT_CTL_IMASK)
        elif what == "cval":
            channel.cval = value & _U64
            cpu.write_sysreg(uc, channel.cval_reg, channel.cval)
        else:
            channel.cval = (counter_now() - channel.offset + _signed32(value)) & _U64
            cpu.write_sysreg(uc, channel.cval_reg, channel.cval)
        return channel.intid, self._publish_status(uc, channel, counter_now())

    def _publish_status(self, uc: Uc | None, channel: _Channel, now: int) -> bool:
        fired = channel.fired(now)
        if uc is not None:
            status = sysregs.CNT_CTL_ISTATUS if fired else 0
            cpu.write_sysreg(uc, channel.ctl_reg, channel.ctl | status)
        channel.level = fired and not channel.ctl & sysregs.CNT_CTL_IMASK
        return channel.level

    def update(self, uc: Uc | None) -> list[tuple[int, bool]]:
        """Recompute the interrupt levels, and ISTATUS in `uc` if given (the engine holding
        this vCPU's state); returns (intid, level) per channel."""
        now = counter_now()
        levels = []
        for channel in self.channels:
            if channel.ctl & sysregs.CNT_CTL_ENABLE:
                was = channel.level
                fired_before = channel.fired(now)
                if fired_before or was:
                    self._publish_status(uc, channel, now)
            else:
                channel.level = False
            levels.append((channel.intid, channel.level))
        return levels

    def next_deadline_ns(self) -> int | None:
        """Monotonic ns at which an enabled, unmasked channel will fire (None: never)."""
        deadline = None
        for channel in self.channels:
            if channel.ctl & sysregs.CNT_CTL_ENABLE and not channel.ctl & sysregs.CNT_CTL_IMASK \
                    and not channel.level:
                at = ticks_to_monotonic_ns(channel.cval + channel.offset)
                deadline = at if deadline is None else min(deadline, at)
        return deadline

    # --- state ---------------------------------------------------------------------------

    @property
    def virtual_offset(self) -> int:
        return self.virtual.offset

    def save(self) -> TimerState:
        return TimerState(virtual_ctl=self.virtual.ctl, virtual_cval=self.virtual.cval,
                          physical_ctl=self.physical.ctl, physical_cval=self.physical.cval,
                          virtual_count=(counter_now() - self.virtual.offset) & _U64)

    def restore(self, uc: Uc, state: TimerState) -> None:
        """Load `state` (into `uc` too, the engine holding this vCPU): the virtual counter
        goes on from `state.virtual_count`."""
        self.virtual.offset = counter_now() - state.virtual_count     # negative: ahead of it
        cpu.write_sysreg(uc, sysregs.CNTVOFF_EL2, self.virtual.offset & _U64)
        for channel, ctl, cval in ((self.virtual, state.virtual_ctl, state.virtual_cval),
                                   (self.physical, state.physical_ctl, state.physical_cval)):
            channel.ctl = ctl & (sysregs.CNT_CTL_ENABLE | sysregs.CNT_CTL_IMASK)
            channel.cval = cval & _U64
            channel.level = False
            cpu.write_sysreg(uc, channel.cval_reg, channel.cval)
            self._publish_status(uc, channel, counter_now())

"""The boot timer (`--boot-timer`): measures how long the guest took to boot.

When the guest writes the byte 123 at offset 0 (typically its init, through /dev/mem),
the device logs Firecracker's line::

    Guest-boot-time =   1234 us 1 ms,    567 CPU us 0 CPU ms

with the wall time since the VM's start (VM clock time 0, i.e. when the machine began to be
built, like upstream's `build_microvm_for_boot`) and the process CPU time used since then.
Reads return 0 and other writes are ignored. The guest finds the device by its fixed address
(BOOT_TIMER_START); there is no device-tree node, as upstream.
"""

from __future__ import annotations

import time
from typing import Any, Mapping

from petard.devices import Device, DeviceContext, hookimpl

TYPE_NAME = "boot_timer"

MAGIC_VALUE_SIGNAL_GUEST_BOOT_COMPLETE = 123

NS_PER_US = 1_000
US_PER_MS = 1_000


def format_boot_time(boot_time_us: int, boot_time_cpu_us: int) -> str:
    """Firecracker's `Guest-boot-time` log line."""
    return (
        f"Guest-boot-time = {boot_time_us:>6} us {boot_time_us // US_PER_MS} ms, "
        f"{boot_time_cpu_us:>6} CPU us {boot_time_cpu_us // US_PER_MS} CPU ms"
    )


class BootTimer(Device):
    """Options: `start_ns` — VM clock time the measurement starts from (default 0, the
    clock's start); `start_cpu_ns` — process CPU time at that moment (default: when the
    device is created)."""

    irq_count = 0

    def __init__(self, ctx: DeviceContext, *, start_ns: int = 0, start_cpu_ns: int | None = None) -> None:
        super().__init__(ctx)
        self._start_ns = start_ns
        self._start_cpu_ns = time.process_time_ns() if start_cpu_ns is None else start_cpu_ns
        #: The last measurement, in microseconds (None until the guest signals).
        self.boot_time_us: int | None = None
        self.boot_time_cpu_us: int | None = None

    def mmio_read(self, offset: int, size: int) -> int:
        return 0

    def mmio_write(self, offset: int, size: int, value: int) -> None:
        if size != 1 or offset != 0 or value != MAGIC_VALUE_SIGNAL_GUEST_BOOT_COMPLETE:
            return
        self.boot_time_us = (self.ctx.clock.now_ns() - self._start_ns) // NS_PER_US
        self.boot_time_cpu_us = (time.process_time_ns() - self._start_cpu_ns) // NS_PER_US
        self.ctx.log.info("%s", format_boot_time(self.boot_time_us, self.boot_time_cpu_us))

    def save_state(self) -> dict[str, Any]:
        return {"boot_time_us": self.boot_time_us, "boot_time_cpu_us": self.boot_time_cpu_us}

    def restore_state(self, state: Mapping[str, Any]) -> None:
        self.boot_time_us = state["boot_time_us"]
        self.boot_time_cpu_us = state["boot_time_cpu_us"]


@hookimpl
def petard_device_types() -> dict[str, type[Device]]:
    return {TYPE_NAME: BootTimer}

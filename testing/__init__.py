"""petard's test kit for device authors, also a pytest plugin (``petard.testing.pytest_plugin``).

Two levels, one fixture each:

* ``device_bench`` → `DeviceBench`: your device on a real MMIO bus with guest memory, a
  manual clock and an interrupt recorder; read/write registers, step time, assert IRQs.
* ``petard_guest`` → a function booting the small Debian guest with your devices attached,
  returning a `GuestVm` (console commands, device access on the VM's thread).

See docs/plugins.md for a walk-through.
"""

from petard.testing.bench import AttachedDevice, DeviceBench, DeviceFailure, IrqProbe
from petard.testing.guest import CommandResult, GuestDevice, GuestVm

__all__ = [
    "AttachedDevice",
    "CommandResult",
    "DeviceBench",
    "DeviceFailure",
    "GuestDevice",
    "GuestVm",
    "IrqProbe",
]

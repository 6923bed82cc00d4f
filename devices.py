"""petard's public device API: everything a device plugin may use, in one place.

    from petard.devices import Device, DeviceContext, IrqLine, hookimpl

A plugin imports from here (and tests from `petard.testing`) and from nowhere else in
petard: `petard.core.*` is petard's own inside and changes without notice, while the names
below change only with a deprecation period. The built-in devices (`petard.plugins`) and the
worked example (`examples/pl061`) are written against exactly this. `docs/plugins.md` is the
guide.

What is here:

* the device model: `Device`, what it is given (`DeviceContext`), its errors (a refused API
  request after boot: `DeviceRequestError`), its logger;
* the plugin hooks' marker, `hookimpl` (the hooks themselves: `petard.core.hookspecs`);
* what a device touches: `IrqLine`, `GuestMemory` (and `GuestMemoryError`), `VirtualClock`
  (and its `TimerHandle`), `RateLimiter` (Firecracker's token buckets);
* its device-tree node: `FdtNode`, `Cells`, `U64`, `EMPTY` and the property helpers
  `mmio_reg`, `spi_interrupt`, `apb_clock_properties`, `gic_parent_property`;
* virtio over MMIO: the `VirtioMmioDevice` base, `ActivationError`, the split virtqueue
  (`SplitQueue`, `Descriptor`, `DescriptorChain`, `QueueError`) and the specification's
  numbers (`virtio_spec`).
"""

from petard.core.boot.fdt import EMPTY, U64, Cells, FdtNode
from petard.core.boot.fdt_bindings import apb_clock_properties, gic_parent_property, mmio_reg, spi_interrupt
from petard.core.clock import TimerHandle, VirtualClock
from petard.core.device import (Device, DeviceContext, DeviceCreationError, DeviceOptionsError, DeviceRequestError,
                                plugin_logger)
from petard.core.hookspecs import hookimpl
from petard.core.irq import IrqLine
from petard.core.memory import GuestMemory, GuestMemoryError
from petard.core.ratelimiter import RateLimiter
from petard.core.virtio import spec as virtio_spec
from petard.core.virtio.mmio import ActivationError, VirtioMmioDevice
from petard.core.virtio.queue import Descriptor, DescriptorChain, QueueError, SplitQueue

__all__ = [
    "ActivationError",
    "Cells",
    "Descriptor",
    "DescriptorChain",
    "Device",
    "DeviceContext",
    "DeviceCreationError",
    "DeviceOptionsError",
    "DeviceRequestError",
    "EMPTY",
    "FdtNode",
    "GuestMemory",
    "GuestMemoryError",
    "IrqLine",
    "QueueError",
    "RateLimiter",
    "SplitQueue",
    "TimerHandle",
    "U64",
    "VirtioMmioDevice",
    "VirtualClock",
    "apb_clock_properties",
    "gic_parent_property",
    "hookimpl",
    "mmio_reg",
    "plugin_logger",
    "spi_interrupt",
    "virtio_spec",
]

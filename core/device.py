"""The public device API: what a device model implements and what it is given.

A device type is a subclass of `Device`. It declares the size of its register window
(`mmio_size`), how many interrupt lines it needs (`irq_count`), answers guest register
accesses (`mmio_read` / `mmio_write`), describes itself in the device tree (`fdt_nodes`), and
can save and restore its state. Everything it may touch arrives in a `DeviceContext`: its
IRQ lines, guest memory, a clock, a logger. A device never sees a backend (no KVM file
descriptor, no Unicorn engine), so one model runs unchanged on every backend.

Plugins make device types available through the `petard_device_types` hook (see
`petard.core.hookspecs`); the machine builder places each device on the MMIO bus at an
address with its GSIs and calls, in order::

    device = SomeDevice(ctx, **options)       # options come from the machine configuration
    nodes = device.fdt_nodes(base, ctx.irqs)  # merged into the guest's device tree
    bus.add(base, device.mmio_size, device)
    device.start()                            # the guest starts running after this
    ...                                       # mmio_read / mmio_write / clock callbacks
    device.stop()                             # the VM has stopped; flush and release

Threading: all calls into a device (MMIO accesses, clock callbacks, start/stop, state) come
from one thread at a time, so device code needs no locks. To hand a device data from another
thread (console input, a socket), post it with `ctx.clock.call_soon_threadsafe`.

Errors: an exception escaping `mmio_read`/`mmio_write` disables the device (it then reads as
zero) and is logged naming the plugin; one escaping a clock callback is logged the same way.
The VM keeps running either way. Guest misbehaviour (a bad offset or access size) is not a
device error: log it with `unhandled_access` and carry on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Mapping, Sequence

from petard.core.layout import MMIO_LEN

if TYPE_CHECKING:
    from petard.core.boot.fdt import FdtNode
    from petard.core.clock import VirtualClock
    from petard.core.irq import IrqLine
    from petard.core.memory import GuestMemory

__all__ = ["Device", "DeviceContext", "DevicePlacement", "DeviceType", "plugin_logger"]

PLUGIN_LOGGER_PREFIX = "petard.plugin."


def plugin_logger(plugin: str) -> logging.Logger:
    """The logger of plugin `plugin`: `petard.plugin.<plugin>`."""
    return logging.getLogger(PLUGIN_LOGGER_PREFIX + plugin)


@dataclass(frozen=True, eq=False)
class DeviceContext:
    """Everything a device instance may use; built by the machine builder.

    `name` is the instance's name in the machine (unique), `plugin` the name of the plugin
    that provided its type, `irqs` its interrupt lines (`irq_count` of them, in order),
    `log` the logger `petard.plugin.<plugin>`.
    """

    name: str
    plugin: str
    irqs: tuple[IrqLine, ...]
    memory: GuestMemory
    clock: VirtualClock
    log: logging.Logger = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "log", plugin_logger(self.plugin))


class Device:
    """Base class of device models. Subclasses set the class attributes and override what
    they need; the defaults are a register window that reads as zero and ignores writes."""

    #: Size in bytes of the register window on the MMIO bus.
    mmio_size: ClassVar[int] = MMIO_LEN
    #: How many interrupt lines the device needs (`ctx.irqs` has exactly this many).
    irq_count: ClassVar[int] = 0
    #: Device-tree `compatible` strings, most specific first.
    compatible: ClassVar[tuple[str, ...]] = ()

    def __init__(self, ctx: DeviceContext) -> None:
        if len(ctx.irqs) != self.irq_count:
            raise ValueError(
                f"{type(self).__name__} needs {self.irq_count} IRQ line(s), got {len(ctx.irqs)}"
            )
        self.ctx = ctx
        self._logged_unhandled: set[tuple[str, int, int]] = set()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.ctx.name!r} of plugin {self.ctx.plugin!r}>"

    # --- the guest's view --------------------------------------------------------

    def mmio_read(self, offset: int, size: int) -> int:
        """Value of a `size`-byte (1, 2, 4 or 8) guest read at `offset` in the window.

        Return a non-negative int that fits in `size` bytes (little-endian like the guest)."""
        self.unhandled_access("read", offset, size)
        return 0

    def mmio_write(self, offset: int, size: int, value: int) -> None:
        """Handle a `size`-byte guest write of `value` at `offset` in the window."""
        self.unhandled_access("write", offset, size, value)

    def unhandled_access(self, kind: str, offset: int, size: int, value: int | None = None) -> None:
        """Log, once per (kind, offset, size), a guest access the device does not implement."""
        key = (kind, offset, size)
        if key in self._logged_unhandled:
            return
        self._logged_unhandled.add(key)
        shown = "" if value is None else f" of {value:#x}"
        self.ctx.log.warning(
            "%s: ignoring guest %s%s, %d byte(s) at offset %#x", self.ctx.name, kind, shown, size, offset
        )

    def fdt_nodes(self, base: int, irqs: Sequence[IrqLine]) -> list[FdtNode]:
        """Device-tree nodes describing this device at `base` with interrupt lines `irqs`.

        Return `petard.core.boot.fdt.FdtNode`s to place under the root node, or an empty list
        for a device the guest finds another way (or not at all)."""
        return []

    # --- lifecycle and state ------------------------------------------------------

    def start(self) -> None:
        """Called once the device is on the bus, just before the guest first runs."""

    def stop(self) -> None:
        """Called after the guest has stopped for good: flush output, release resources."""

    def save_state(self) -> dict[str, Any]:
        """The device's guest-visible state as plain data (ints, bools, str, bytes, lists,
        dicts) for snapshots; `restore_state` on a freshly built device must bring it back."""
        return {}

    def restore_state(self, state: Mapping[str, Any]) -> None:
        """Load what `save_state` returned (called before `start`)."""


@dataclass(frozen=True)
class DeviceType:
    """A device class as registered by a plugin under `name`."""

    name: str
    cls: type[Device]
    plugin: str

    def create(
        self,
        *,
        instance_name: str,
        irqs: Sequence[IrqLine],
        memory: GuestMemory,
        clock: VirtualClock,
        options: Mapping[str, Any] | None = None,
    ) -> Device:
        """Build an instance with a `DeviceContext` attributing it to this type's plugin."""
        ctx = DeviceContext(
            name=instance_name, plugin=self.plugin, irqs=tuple(irqs), memory=memory, clock=clock
        )
        return self.cls(ctx, **dict(options or {}))


@dataclass(frozen=True)
class DevicePlacement:
    """A request, returned from the `petard_machine_devices` hook, to put a device on a
    machine. `address`/`gsis` None mean: allocate the next virtio-mmio slot / free GSIs."""

    type_name: str
    name: str | None = None
    address: int | None = None
    gsis: tuple[int, ...] | None = None
    options: Mapping[str, Any] = field(default_factory=dict)

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

Errors: an exception escaping `mmio_read`/`mmio_write`, or a read answering something other
than an int that fits in the access size, disables the device (it then reads as zero) and is
logged naming the plugin; an exception escaping a clock callback is logged the same way.
The VM keeps running either way. Guest misbehaviour (a bad offset or access size) is not a
device error: log it with `unhandled_access` and carry on.

Options: a device that users attach through the configuration (the ``"petard"`` section of
``--config-file`` or ``PUT /petard/devices/{id}``) declares `options_model`, a pydantic model;
the user's ``options`` object is validated with it when the request arrives (a 400 naming the
plugin and the field on error) and the device's constructor receives the model's fields as
keyword arguments. petard's core never imports pydantic: it only calls
``options_model.model_validate``.

Plugins import all of this from `petard.devices`, the public device API (with the parts of
`IrqLine`, `GuestMemory` and `VirtualClock` documented in `DeviceContext`); it changes only
with a deprecation period. This module, like everything in ``petard.core``, is internal.
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

__all__ = [
    "Device",
    "DeviceContext",
    "DeviceCreationError",
    "DeviceOptionsError",
    "DeviceRequestError",
    "DevicePlacement",
    "DeviceType",
    "plugin_logger",
]

PLUGIN_LOGGER_PREFIX = "petard.plugin."


def plugin_logger(plugin: str) -> logging.Logger:
    """The logger of plugin `plugin`: `petard.plugin.<plugin>`."""
    return logging.getLogger(PLUGIN_LOGGER_PREFIX + plugin)


class DeviceOptionsError(ValueError):
    """A device's options were refused by its `options_model`; the message names the
    device type, its plugin and every offending field."""

    def __init__(self, type_name: str, plugin: str, problems: str) -> None:
        super().__init__(f"device type {type_name!r} of plugin {plugin!r}: invalid options: {problems}")
        self.type_name = type_name
        self.plugin = plugin
        self.problems = problems


class DeviceCreationError(ValueError):
    """A device's constructor raised; the message names the instance, its type and plugin."""


class DeviceRequestError(Exception):
    """A device refuses a request the VMM handed it from the API after boot (a new balloon
    target, say); ``str()`` is the text the client gets."""


@dataclass(frozen=True, eq=False)
class DeviceContext:
    """Everything a device instance may use; built by the machine builder.

    `name` is the instance's name in the machine (unique), `plugin` the name of the plugin
    that provided its type, `irqs` its interrupt lines (`irq_count` of them, in order),
    `log` the logger `petard.plugin.<plugin>`.

    What a device may call on them:

    * `IrqLine`: ``raise_()``, ``lower()``, ``set_level(bool)`` (level-triggered),
      ``pulse()`` (one edge), and the read-only ``level``, ``gsi``, ``intid``.
    * `GuestMemory` (DMA): ``read(gpa, n) -> bytes``, ``write(gpa, data)``,
      ``read_u16/u32/u64(gpa)``, ``write_u16/u32/u64(gpa, value)``, ``view(gpa, n)``,
      ``contains(gpa, n)``; out-of-range addresses raise ``GuestMemoryError``.
    * `VirtualClock`: ``now_ns()``, ``wall_ns()``, ``call_at(when_ns, fn, *args)``,
      ``call_later(delay_ns, fn, *args)`` (both return a handle with ``cancel()``), and
      ``call_soon_threadsafe(fn, *args)`` from other threads.
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
    #: A pydantic model validating the options users give in the configuration, or None
    #: for devices that take no user options (see the module docstring).
    options_model: ClassVar[Any] = None

    @classmethod
    def options_from_config(cls, options: Mapping[str, Any] | None) -> dict[str, Any]:
        """The keyword arguments for the constructor from user-given `options`, validated
        by `options_model`. Raises `ValueError` (with pydantic's per-field errors) when
        they are refused, or when options are given to a device without a model."""
        options = dict(options or {})
        model = cls.options_model
        if model is None:
            if options:
                raise ValueError(f"takes no options, got {', '.join(sorted(options))}")
            return {}
        validated = model.model_validate(options)
        return {name: getattr(validated, name) for name in type(validated).model_fields}

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

    def check_options(self, options: Mapping[str, Any] | None) -> dict[str, Any]:
        """`Device.options_from_config` for this type, its failures as `DeviceOptionsError`."""
        try:
            return self.cls.options_from_config(options)
        except (ValueError, TypeError) as error:
            raise DeviceOptionsError(self.name, self.plugin, describe_validation_error(error)) from None

    def create(
        self,
        *,
        instance_name: str,
        irqs: Sequence[IrqLine],
        memory: GuestMemory,
        clock: VirtualClock,
        options: Mapping[str, Any] | None = None,
        from_config: bool = False,
    ) -> Device:
        """Build an instance with a `DeviceContext` attributing it to this type's plugin.

        `options` are passed to the constructor as keyword arguments; with `from_config`
        they are user configuration and first go through `check_options`."""
        ctx = DeviceContext(
            name=instance_name, plugin=self.plugin, irqs=tuple(irqs), memory=memory, clock=clock
        )
        kwargs = self.check_options(options) if from_config else dict(options or {})
        try:
            return self.cls(ctx, **kwargs)
        except Exception as error:
            raise DeviceCreationError(
                f"device {instance_name!r} of type {self.name!r} (plugin {self.plugin!r}) could not be created: "
                f"{type(error).__name__}: {error}") from error


def describe_validation_error(error: Exception) -> str:
    """One line per problem: pydantic's ``errors()`` as ``field.path: message``, or the
    exception's text."""
    errors = getattr(error, "errors", None)
    if callable(errors):
        try:
            items = errors()
        except Exception:  # not pydantic's errors(); fall back to the text
            items = None
        if items:
            parts = []
            for item in items:
                location = ".".join(str(part) for part in item.get("loc", ())) or "options"
                parts.append(f"{location}: {item.get('msg', 'invalid')}")
            return "; ".join(parts)
    return str(error)


@dataclass(frozen=True)
class DevicePlacement:
    """A request, returned from the `petard_machine_devices` hook, to put a device on a
    machine. `address`/`gsis` None mean: allocate the next virtio-mmio slot / free GSIs."""

    type_name: str
    name: str | None = None
    address: int | None = None
    gsis: tuple[int, ...] | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    #: True when `options` come from the user's configuration: they are then validated
    #: by the type's `options_model` before the device is built.
    from_config: bool = False

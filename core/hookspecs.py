"""The hooks petard calls on plugins (pluggy project name "petard").

A plugin is a module or object with functions marked `@hookimpl` and named after the hooks
below. Built-in devices (`petard.plugins.*`) use exactly these hooks. A third-party
distribution makes itself known with an entry point in group `petard`::

    [project.entry-points.petard]
    mydevice = "mydevice.plugin"      # the plugin's name is the entry point's name

and implements, for example::

    from petard.core.hookspecs import hookimpl

    @hookimpl
    def petard_device_types():
        return {"my-sensor": MySensor}           # MySensor subclasses petard.core.device.Device

These hooks and `petard.core.device` are petard's stable device API. `petard plugins` lists
which plugins implement which hooks; ``--trace-plugins`` (``PETARD_TRACE_PLUGINS=1``) logs
every call. The manager calls each implementation on its own, in registration order
(built-ins first), so that an exception is reported naming the plugin that raised it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable, Mapping

import pluggy

if TYPE_CHECKING:
    from petard.core.device import Device, DevicePlacement

PROJECT_NAME = "petard"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def petard_device_types() -> Mapping[str, type[Device]]:
    """Return the device types this plugin provides, keyed by type name.

    Type names are global: two plugins providing the same name is an error naming both.
    Called once, when the plugin manager's device registry is first used.
    """


@hookspec
def petard_machine_devices(spec: Any) -> Iterable[DevicePlacement] | None:
    """Return devices to add to the machine being built from `spec`
    (a `petard.core.machine.MachineSpec`), as `DevicePlacement`s, or None.

    Called once per machine build, after the devices the configuration asks for have been
    placed; placements with no address or GSIs get the next free ones.
    """

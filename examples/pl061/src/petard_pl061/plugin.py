"""The plugin petard loads through the entry point ``pl061`` (group ``petard``)."""

from __future__ import annotations

from petard.devices import Device, hookimpl

from petard_pl061.device import Pl061

TYPE_NAME = "pl061"


@hookimpl
def petard_device_types() -> dict[str, type[Device]]:
    return {TYPE_NAME: Pl061}

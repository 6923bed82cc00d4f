"""Plugin devices a user attaches to the microVM (petard's extension of the configuration).

They arrive as ``PUT /petard/devices/{device_id}`` or as entries of the config file's
``"petard": {"devices": [...]}`` section (replayed as the same request). Each is checked when
it arrives, so that the client gets a 400 naming the problem at once:

* the device type exists (some registered plugin provides it);
* its ``options`` pass the type's own ``options_model`` (pydantic's errors, per field);
* explicit ``gsis`` are as many as the type's ``irq_count``, each a legacy GSI;
* an explicit ``address`` is 4 KiB aligned and the window lies in the device area
  (``PLUGIN_DEVICE_AREA``, where Firecracker places its MMIO devices).

Overlaps with other devices are found when the machine is built (InstanceStart then fails
with an error naming both devices and their plugins). Plugin devices are placed after
Firecracker's own, so they never change the addresses or GSIs upstream's devices get.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from petard.core import layout
from petard.core.device import DeviceOptionsError, DevicePlacement
from petard.core.faults import VmmActionError

# Where plugin devices may sit: Firecracker's MMIO device area, from the boot timer's slot
# up to the (unused) PCI configuration window.
PLUGIN_DEVICE_AREA = (layout.BOOT_TIMER_START, layout.PCI_MMCONFIG_START)
ADDRESS_ALIGNMENT = layout.PAGE_SIZE


def plugin_device_error(message: str) -> VmmActionError:
    return VmmActionError(f"Plugin device error: {message}")


@dataclass(frozen=True)
class PluginDeviceConfig:
    """One configured plugin device, as given by the user (options still as JSON data)."""

    device_id: str
    type: str
    address: int | None = None
    gsis: tuple[int, ...] | None = None
    options: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_request(cls, request: Any) -> PluginDeviceConfig:
        """From anything with the request body's attributes (``api.models.PetardDevice``)."""
        gsis = None if request.gsis is None else tuple(request.gsis)
        return cls(request.device_id, request.type, request.address, gsis, dict(request.options or {}))

    def to_json(self) -> dict[str, Any]:
        return {"device_id": self.device_id, "type": self.type, "address": self.address,
                "gsis": None if self.gsis is None else list(self.gsis), "options": dict(self.options)}

    def placement(self) -> DevicePlacement:
        """Where the machine builder puts it; options are validated again there."""
        return DevicePlacement(self.type, name=self.device_id, address=self.address, gsis=self.gsis,
                               options=self.options, from_config=True)


def check_plugin_device(config: PluginDeviceConfig, plugin_manager: Any) -> None:
    """Raise a `VmmActionError` (a 400 on the API) naming what is wrong with `config`."""
    try:
        device_type = plugin_manager.device_type(config.type)
    except KeyError as error:
        raise plugin_device_error(f"{config.device_id}: {error.args[0]}") from None
    try:
        device_type.check_options(config.options)
    except DeviceOptionsError as error:
        raise plugin_device_error(f"{config.device_id}: {error}") from None
    owner = f"{config.device_id}: device type {config.type!r} of plugin {device_type.plugin!r}"
    irq_count = device_type.cls.irq_count
    if config.gsis is not None:
        if len(config.gsis) != irq_count:
            raise plugin_device_error(f"{owner} needs {irq_count} GSI(s), got {len(config.gsis)}")
        for gsi in config.gsis:
            if gsi >= layout.GSI_COUNT:
                raise plugin_device_error(f"{owner}: GSI {gsi} is out of range (0-{layout.GSI_COUNT - 1})")
    if config.address is not None:
        start, end = PLUGIN_DEVICE_AREA
        window_end = config.address + device_type.cls.mmio_size
        if config.address % ADDRESS_ALIGNMENT:
            raise plugin_device_error(f"{owner}: address {config.address:#x} is not {ADDRESS_ALIGNMENT:#x}-aligned")
        if config.address < start or window_end > end:
            raise plugin_device_error(
                f"{owner}: window [{config.address:#x}, {window_end:#x}) is outside the device area "
                f"[{start:#x}, {end:#x})")

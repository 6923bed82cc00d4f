"""The plugin manager: finds plugins, registers them, and asks them for device types.

Built-in plugins (`BUILTIN_PLUGINS`) are registered first, through the same hooks as
third-party ones. Then, unless `PETARD_DISABLE_PLUGIN_AUTOLOAD` is set to a non-empty value,
every entry point of group `petard` is loaded and registered under its entry-point name.
Names in the block list are skipped, built-in or not. Every failure is a `PluginError` whose
message names the plugin.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
import os
from dataclasses import dataclass
from typing import Any, Iterable

import pluggy

from petard.core import hookspecs
from petard.core.device import Device, DevicePlacement, DeviceType

__all__ = [
    "BUILTIN_PLUGINS",
    "DISABLE_AUTOLOAD_ENV",
    "ENTRY_POINT_GROUP",
    "PetardPluginManager",
    "PluginError",
    "PluginInfo",
    "create_plugin_manager",
]

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "petard"
DISABLE_AUTOLOAD_ENV = "PETARD_DISABLE_PLUGIN_AUTOLOAD"

# Plugin name -> module, registered in this order.
BUILTIN_PLUGINS = {
    "serial": "petard.plugins.serial",
    "rtc": "petard.plugins.rtc",
    "boot_timer": "petard.plugins.boot_timer",
    "virtio_blk": "petard.plugins.virtio_blk",
    "virtio_rng": "petard.plugins.virtio_rng",
}


class PluginError(Exception):
    """A plugin failed to load, register or answer a hook. `plugin` is its name."""

    def __init__(self, plugin: str, message: str) -> None:
        super().__init__(f"plugin {plugin!r}: {message}")
        self.plugin = plugin


@dataclass(frozen=True)
class PluginInfo:
    """What `petard plugins`-style listings show about one registered plugin."""

    name: str
    version: str | None
    builtin: bool
    hooks: tuple[str, ...]


class PetardPluginManager(pluggy.PluginManager):
    """A pluggy manager with petard's hookspecs and device-type registry."""

    def __init__(self) -> None:
        super().__init__(hookspecs.PROJECT_NAME)
        self.add_hookspecs(hookspecs)
        self._versions: dict[str, str | None] = {}
        self._builtin: set[str] = set()
        self._device_types: dict[str, DeviceType] | None = None

    # --- registration ---------------------------------------------------------------

    def register_plugin(self, plugin: Any, name: str, *, version: str | None = None,
                        builtin: bool = False) -> bool:
        """Register `plugin` as `name`; False if `name` is blocked. Errors name the plugin."""
        if self.is_blocked(name):
            log.info("plugin %r is blocked; not registering it", name)
            return False
        try:
            self.register(plugin, name=name)
        except (ValueError, pluggy.PluginValidationError) as exc:
            raise PluginError(name, f"cannot be registered: {exc}") from exc
        self._versions[name] = version
        if builtin:
            self._builtin.add(name)
        self._device_types = None
        return True

    def register_builtins(self) -> None:
        from petard import __version__

        for name, module_name in BUILTIN_PLUGINS.items():
            if self.is_blocked(name):
                continue
            try:
                module = importlib.import_module(module_name)
            except Exception as exc:
                raise PluginError(name, f"built-in module {module_name} failed to import: {exc}") from exc
            self.register_plugin(module, name, version=__version__, builtin=True)

    def load_entry_points(self, group: str = ENTRY_POINT_GROUP) -> list[str]:
        """Load and register every entry point of `group`; return the names registered."""
        loaded = []
        for entry_point in importlib.metadata.entry_points(group=group):
            name = entry_point.name
            if self.is_blocked(name):
                log.info("plugin %r is blocked; not loading entry point %s", name, entry_point.value)
                continue
            distribution = entry_point.dist
            where = f"entry point {name} = {entry_point.value}"
            if distribution is not None:
                where += f" of distribution {distribution.metadata['Name']} {distribution.version}"
            try:
                plugin = entry_point.load()
            except Exception as exc:
                raise PluginError(name, f"failed to load ({where}): {type(exc).__name__}: {exc}") from exc
            version = distribution.version if distribution is not None else None
            if self.register_plugin(plugin, name, version=version):
                loaded.append(name)
        return loaded

    # --- asking plugins -------------------------------------------------------------

    def device_types(self) -> dict[str, DeviceType]:
        """Every device type of every registered plugin, by type name (computed once per
        set of registered plugins)."""
        if self._device_types is None:
            self._device_types = self._collect_device_types()
        return dict(self._device_types)

    def device_type(self, type_name: str) -> DeviceType:
        types = self.device_types()
        try:
            return types[type_name]
        except KeyError:
            known = ", ".join(sorted(types)) or "none"
            raise KeyError(f"no plugin provides device type {type_name!r} (known: {known})") from None

    def _collect_device_types(self) -> dict[str, DeviceType]:
        types: dict[str, DeviceType] = {}
        # Each implementation is called on its own so that errors can name its plugin;
        # get_hookimpls() lists them in registration order.
        for impl in self.hook.petard_device_types.get_hookimpls():
            plugin = impl.plugin_name
            try:
                provided = impl.function()
            except Exception as exc:
                raise PluginError(plugin, f"petard_device_types() raised {type(exc).__name__}: {exc}") from exc
            if provided is None:
                continue
            if not hasattr(provided, "items"):
                raise PluginError(plugin, f"petard_device_types() must return a mapping, got {type(provided).__name__}")
            for type_name, cls in provided.items():
                if not isinstance(type_name, str) or not type_name:
                    raise PluginError(plugin, f"device type name {type_name!r} is not a non-empty string")
                if not (isinstance(cls, type) and issubclass(cls, Device)):
                    raise PluginError(
                        plugin, f"device type {type_name!r} is {cls!r}, not a subclass of petard.core.device.Device"
                    )
                if type_name in types:
                    raise PluginError(
                        plugin, f"device type {type_name!r} is already provided by plugin {types[type_name].plugin!r}"
                    )
                types[type_name] = DeviceType(type_name, cls, plugin)
        return types

    def machine_devices(self, spec: Any) -> list[DevicePlacement]:
        """Every plugin's extra devices for the machine built from `spec`, in registration order."""
        placements: list[DevicePlacement] = []
        for impl in self.hook.petard_machine_devices.get_hookimpls():
            try:
                provided = impl.function(spec=spec)
            except Exception as exc:
                raise PluginError(
                    impl.plugin_name, f"petard_machine_devices() raised {type(exc).__name__}: {exc}"
                ) from exc
            for placement in provided or ():
                if not isinstance(placement, DevicePlacement):
                    raise PluginError(
                        impl.plugin_name, f"petard_machine_devices() returned {placement!r}, not a DevicePlacement"
                    )
                placements.append(placement)
        return placements

    def plugin_infos(self) -> list[PluginInfo]:
        infos = []
        for name, plugin in self.list_name_plugin():
            if plugin is None:  # blocked
                continue
            hooks = tuple(sorted(caller.name for caller in self.get_hookcallers(plugin) or ()))
            infos.append(PluginInfo(name, self._versions.get(name), name in self._builtin, hooks))
        return infos


def create_plugin_manager(*, autoload: bool | None = None, blocked: Iterable[str] = ()) -> PetardPluginManager:
    """A manager with the built-ins and (when `autoload`, default: unless
    `PETARD_DISABLE_PLUGIN_AUTOLOAD` is set) every installed `petard` entry point."""
    manager = PetardPluginManager()
    for name in blocked:
        manager.set_blocked(name)
    manager.register_builtins()
    if autoload is None:
        autoload = not os.environ.get(DISABLE_AUTOLOAD_ENV)
    if autoload:
        manager.load_entry_points()
    return manager

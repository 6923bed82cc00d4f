"""The plugin manager: finds plugins, registers them, and asks them for device types.

Built-in plugins (`BUILTIN_PLUGINS`) are registered first, through the same hooks as
third-party ones. Then, unless autoloading is off, every entry point of group `petard` is
loaded and registered under its entry-point name. Every failure is a `PluginError` whose
message names the plugin.

Switches (environment variable, and the `petard` command-line flag that does the same):

* ``PETARD_DISABLE_PLUGIN_AUTOLOAD=1`` / ``--no-plugin-autoload``: load no entry points;
  only the built-ins are registered.
* ``PETARD_BLOCK_PLUGINS=a,b`` / ``--block-plugin NAME`` (repeatable): never load or register
  these plugins, built-in or not (a blocked entry point is not even imported).
* ``PETARD_TRACE_PLUGINS=1`` / ``--trace-plugins``: log every hook call (plugin, arguments,
  result or exception, duration) to the ``petard.plugins.trace`` logger at Info level.

One manager serves a petard process (`get_plugin_manager`, configured once by the command
line with `set_plugin_manager`); tests build their own with `create_plugin_manager`.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
import os
import time
from dataclasses import dataclass
from typing import Any, Iterable, Iterator

import pluggy

from petard.core import hookspecs
from petard.core.device import Device, DevicePlacement, DeviceType

__all__ = [
    "BLOCK_ENV",
    "BUILTIN_PLUGINS",
    "DISABLE_AUTOLOAD_ENV",
    "ENTRY_POINT_GROUP",
    "PetardPluginManager",
    "PluginError",
    "PluginInfo",
    "PluginSettings",
    "TRACE_ENV",
    "create_plugin_manager",
    "get_plugin_manager",
    "set_plugin_manager",
]

log = logging.getLogger(__name__)
trace_log = logging.getLogger(__name__ + ".trace")

ENTRY_POINT_GROUP = "petard"
DISABLE_AUTOLOAD_ENV = "PETARD_DISABLE_PLUGIN_AUTOLOAD"
BLOCK_ENV = "PETARD_BLOCK_PLUGINS"
TRACE_ENV = "PETARD_TRACE_PLUGINS"

# Plugin name -> module, registered in this order.
BUILTIN_PLUGINS = {
    "serial": "petard.plugins.serial",
    "rtc": "petard.plugins.rtc",
    "boot_timer": "petard.plugins.boot_timer",
    "virtio_blk": "petard.plugins.virtio_blk",
    "virtio_rng": "petard.plugins.virtio_rng",
    "virtio_balloon": "petard.plugins.virtio_balloon",
}


class PluginError(Exception):
    """A plugin failed to load, register or answer a hook. `plugin` is its name."""

    def __init__(self, plugin: str, message: str) -> None:
        super().__init__(f"plugin {plugin!r}: {message}")
        self.plugin = plugin


@dataclass(frozen=True)
class PluginInfo:
    """What `petard plugins` shows about one registered plugin: `source` is "built-in" or
    the distribution that provided its entry point ("name version")."""

    name: str
    version: str | None
    builtin: bool
    hooks: tuple[str, ...]
    source: str = "built-in"
    module: str = ""
    device_types: tuple[str, ...] = ()


def _env_flag(name: str) -> bool:
    return bool(os.environ.get(name))


@dataclass(frozen=True)
class PluginSettings:
    """How to build the process's plugin manager; see the module docstring."""

    autoload: bool = True
    blocked: tuple[str, ...] = ()
    trace: bool = False

    @classmethod
    def from_environment(cls) -> PluginSettings:
        blocked = tuple(name.strip() for name in os.environ.get(BLOCK_ENV, "").split(",") if name.strip())
        return cls(autoload=not _env_flag(DISABLE_AUTOLOAD_ENV), blocked=blocked, trace=_env_flag(TRACE_ENV))

    def with_flags(self, *, no_autoload: bool = False, blocked: Iterable[str] = (),
                   trace: bool = False) -> PluginSettings:
        """These settings plus command-line flags (a flag can only switch something on)."""
        return PluginSettings(autoload=self.autoload and not no_autoload,
                              blocked=tuple(dict.fromkeys((*self.blocked, *blocked))),
                              trace=self.trace or trace)


def _short(value: Any, limit: int = 200) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class PetardPluginManager(pluggy.PluginManager):
    """A pluggy manager with petard's hookspecs and device-type registry."""

    def __init__(self) -> None:
        super().__init__(hookspecs.PROJECT_NAME)
        self.add_hookspecs(hookspecs)
        self._versions: dict[str, str | None] = {}
        self._sources: dict[str, str] = {}
        self._builtin: set[str] = set()
        self._device_types: dict[str, DeviceType] | None = None
        self.tracing = False

    # --- tracing ----------------------------------------------------------------------

    def enable_trace(self) -> None:
        """Log every hook call, including calls through ``self.hook`` by other code."""
        if self.tracing:
            return
        self.tracing = True

        def before(hook_name, hook_impls, kwargs):
            trace_log.info("hook %s(%s) -> plugins %s", hook_name, _short(kwargs),
                           [impl.plugin_name for impl in hook_impls])

        def after(outcome, hook_name, hook_impls, kwargs):
            exception = outcome.exception
            if exception is not None:
                trace_log.info("hook %s raised %s: %s", hook_name, type(exception).__name__, exception)
            else:
                trace_log.info("hook %s returned %s", hook_name, _short(outcome.get_result()))

        self.add_hookcall_monitoring(before, after)

    def _call_each(self, hook_name: str, **kwargs: Any) -> Iterator[tuple[str, Any]]:
        """Call every implementation of `hook_name` in registration order, one at a time so
        that a failure names its plugin; yields (plugin name, result)."""
        for impl in getattr(self.hook, hook_name).get_hookimpls():
            plugin = impl.plugin_name
            arguments = {name: kwargs[name] for name in impl.argnames}
            started = time.perf_counter()
            try:
                result = impl.function(**arguments)
            except Exception as exc:
                if self.tracing:
                    trace_log.info("hook %s of plugin %r raised %s: %s", hook_name, plugin, type(exc).__name__, exc)
                raise PluginError(plugin, f"{hook_name}() raised {type(exc).__name__}: {exc}") from exc
            if self.tracing:
                trace_log.info("hook %s(%s) of plugin %r returned %s in %.3f ms", hook_name,
                               _short(arguments), plugin, _short(result), (time.perf_counter() - started) * 1e3)
            yield plugin, result

    # --- registration ---------------------------------------------------------------

    def register_plugin(self, plugin: Any, name: str, *, version: str | None = None,
                        builtin: bool = False, source: str | None = None) -> bool:
        """Register `plugin` as `name`; False if `name` is blocked. Errors name the plugin."""
        if self.is_blocked(name):
            log.info("plugin %r is blocked; not registering it", name)
            return False
        try:
            self.register(plugin, name=name)
        except (ValueError, pluggy.PluginValidationError) as exc:
            raise PluginError(name, f"cannot be registered: {exc}") from exc
        self._versions[name] = version
        self._sources[name] = source or ("built-in" if builtin else "registered in-process")
        if builtin:
            self._builtin.add(name)
        self._device_types = None
        if self.tracing:
            trace_log.info("registered plugin %r (%s)", name, self._sources[name])
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
            if self.has_plugin(name):
                continue  # the same distribution seen twice on sys.path
            distribution = entry_point.dist
            where = f"entry point {name} = {entry_point.value}"
            source = None
            if distribution is not None:
                source = f"{distribution.metadata['Name']} {distribution.version}"
                where += f" of distribution {source}"
            try:
                plugin = entry_point.load()
            except Exception as exc:
                raise PluginError(name, f"failed to load ({where}): {type(exc).__name__}: {exc}") from exc
            version = distribution.version if distribution is not None else None
            if self.register_plugin(plugin, name, version=version, source=source or entry_point.value):
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
        for plugin, provided in self._call_each("petard_device_types"):
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
        for plugin, provided in self._call_each("petard_machine_devices", spec=spec):
            for placement in provided or ():
                if not isinstance(placement, DevicePlacement):
                    raise PluginError(plugin, f"petard_machine_devices() returned {placement!r}, not a DevicePlacement")
                placements.append(placement)
        return placements

    def plugin_infos(self) -> list[PluginInfo]:
        """The registered plugins in registration order (blocked ones left out)."""
        types_by_plugin: dict[str, list[str]] = {}
        for type_name, device_type in self.device_types().items():
            types_by_plugin.setdefault(device_type.plugin, []).append(type_name)
        infos = []
        for name, plugin in self.list_name_plugin():
            if plugin is None:  # blocked
                continue
            hooks = tuple(sorted(caller.name for caller in self.get_hookcallers(plugin) or ()))
            module = getattr(plugin, "__name__", None) or type(plugin).__module__
            infos.append(PluginInfo(name, self._versions.get(name), name in self._builtin, hooks,
                                    self._sources.get(name, "registered in-process"), module,
                                    tuple(types_by_plugin.get(name, ()))))
        return infos


def create_plugin_manager(*, autoload: bool | None = None, blocked: Iterable[str] = (),
                          trace: bool | None = None) -> PetardPluginManager:
    """A manager with the built-ins and (when `autoload`) every installed `petard` entry
    point. Unset arguments come from the environment (`PluginSettings.from_environment`);
    `blocked` adds to ``PETARD_BLOCK_PLUGINS``."""
    settings = PluginSettings.from_environment()
    manager = PetardPluginManager()
    if settings.trace if trace is None else trace:
        manager.enable_trace()
    for name in (*settings.blocked, *blocked):
        manager.set_blocked(name)
    manager.register_builtins()
    if settings.autoload if autoload is None else autoload:
        manager.load_entry_points()
    return manager


def create_from_settings(settings: PluginSettings) -> PetardPluginManager:
    """A manager built exactly as `settings` say (the environment is not consulted)."""
    manager = PetardPluginManager()
    if settings.trace:
        manager.enable_trace()
    for name in settings.blocked:
        manager.set_blocked(name)
    manager.register_builtins()
    if settings.autoload:
        manager.load_entry_points()
    return manager


_process_manager: PetardPluginManager | None = None


def set_plugin_manager(manager: PetardPluginManager | None) -> None:
    """Make `manager` the process's plugin manager (the command line does this once, after
    applying its flags); None forgets it so that the next use builds one from the environment."""
    global _process_manager
    _process_manager = manager


def get_plugin_manager() -> PetardPluginManager:
    """The process's plugin manager, built from the environment on first use."""
    global _process_manager
    if _process_manager is None:
        _process_manager = create_plugin_manager()
    return _process_manager

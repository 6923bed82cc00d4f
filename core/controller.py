"""The single owner of the microVM's state: every mutating request is applied here, in order.

Requests reach :meth:`Controller.handle` from any thread (the HTTP server's, the
config-file replay); they are queued to one worker thread (``fc_vmm``) that checks the
lifecycle, applies the action to :class:`~petard.core.resources.VmResources`, and answers.
Readers that must never wait behind a long action (``GET /``, ``/version``, ``/vm/config``)
use :meth:`instance_info` and :meth:`resources_view`, which read an immutable snapshot
published after every change.

The controller knows no backend: starting the machine is delegated to a
:class:`MachineStarter` (see :mod:`petard.core.vmm`).
"""

from __future__ import annotations

import dataclasses
import json
import queue
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Callable, Protocol

from petard.core import faults
from petard.core import logger as vmm_logging
from petard.core.device import DeviceRequestError
from petard.core.lifecycle import WIRE_STATE, Action, LifecyclePhase, check_allowed
from petard.core.metrics import Metrics
from petard.core.resources import VmResources
from petard.core.vmm import BALLOON_DEVICE_NAME

log = vmm_logging.get("vmm")

APP_NAME = "Firecracker"


class RunningMachine(Protocol):
    """What the controller needs from a booted machine."""

    def pause(self) -> None: ...

    def resume(self) -> None: ...

    def stop(self) -> None: ...

    def call_device(self, name: str, function: Callable[..., Any], *args: Any) -> Any: ...


class MachineStarter(Protocol):
    """Builds and boots a machine from the resources; calls ``on_exit(exit_code)`` when it ends."""

    def __call__(
        self, resources: VmResources, on_exit: Callable[[int], None]
    ) -> RunningMachine: ...


@dataclass(frozen=True)
class InstanceInfo:
    id: str
    state: str
    vmm_version: str
    app_name: str = APP_NAME


class Controller:
    def __init__(
        self,
        *,
        instance_id: str,
        vmm_version: str,
        starter: MachineStarter,
        vmm_logger: vmm_logging.VmmLogger,
        metrics: Metrics,
        mmds_size_limit: int,
    ):
        self.instance_id = instance_id
        self.vmm_version = vmm_version
        self._starter = starter
        self._logger = vmm_logger
        self.metrics = metrics
        self._mmds_size_limit = mmds_size_limit
        self._resources = VmResources()
        self._phase = LifecyclePhase.UNINITIALIZED
        self._machine: RunningMachine | None = None
        self._published = (self._phase, self._resources.snapshot())
        self._queue: queue.Queue[tuple[Action, Any, Future]] = queue.Queue()
        self._exit_code: int | None = None
        self._exited = threading.Event()
        self._handlers: dict[Action, Callable[[Any], Any]] = {
            Action.CONFIGURE_BOOT_SOURCE: self._resources.set_boot_source,
            Action.CONFIGURE_LOGGER: self._configure_logger,
            Action.CONFIGURE_METRICS: self._configure_metrics,
            Action.CONFIGURE_SERIAL: self._set("serial", boot_specific=False),
            Action.CREATE_SNAPSHOT: self._not_implemented("snapshots"),
            Action.GET_BALLOON_CONFIG: self._get_balloon,
            Action.GET_BALLOON_STATS: self._balloon_statistics,
            Action.GET_MMDS: self._get_mmds,
            Action.FLUSH_METRICS: self._flush_metrics,
            Action.INSERT_BLOCK_DEVICE: self._pre_boot_only(self._resources.set_drive),
            Action.INSERT_PMEM_DEVICE: self._pre_boot_only(self._resources.set_pmem),
            Action.UPDATE_PMEM_DEVICE: self._device_not_found,
            Action.INSERT_NETWORK_DEVICE: self._pre_boot_only(self._resources.set_network_interface),
            Action.LOAD_SNAPSHOT: self._load_snapshot,
            Action.PATCH_MMDS: self._patch_mmds,
            Action.PAUSE: self._pause,
            Action.PUT_MMDS: self._put_mmds,
            Action.PUT_CPU_CONFIGURATION: self._set("cpu_config"),
            Action.RESUME: self._resume,
            Action.SET_BALLOON_DEVICE: self._resources.set_balloon,
            Action.SET_MMDS_CONFIGURATION: self._resources.set_mmds_config,
            Action.SET_VSOCK_DEVICE: self._set("vsock"),
            Action.SET_ENTROPY_DEVICE: self._set("entropy"),
            Action.GET_MEMORY_HOTPLUG_STATUS: self._device_not_found,
            Action.SET_MEMORY_HOTPLUG_DEVICE: self._resources.set_memory_hotplug,
            Action.UPDATE_MEMORY_HOTPLUG_SIZE: self._device_not_found,
            Action.START_MICRO_VM: self._start,
            Action.UPDATE_BALLOON: self._update_balloon,
            Action.UPDATE_BALLOON_STATISTICS: self._update_balloon_statistics,
            Action.START_FREE_PAGE_HINTING: lambda command: self._on_balloon(
                faults.BALLOON_UPDATE_ERROR, lambda balloon: balloon.start_hinting(command.acknowledge_on_stop)),
            Action.GET_FREE_PAGE_HINTING_STATUS: lambda _: self._on_balloon(
                faults.BALLOON_UPDATE_ERROR, lambda balloon: balloon.hinting_status()),
            Action.STOP_FREE_PAGE_HINTING: lambda _: self._on_balloon(
                faults.BALLOON_UPDATE_ERROR, lambda balloon: balloon.stop_hinting()),
            Action.UPDATE_BLOCK_DEVICE: self._update_block_device,
            Action.UPDATE_NETWORK_INTERFACE: self._device_not_found,
            Action.UPDATE_MACHINE_CONFIGURATION: self._resources.update_machine,
            Action.HOT_UNPLUG_DEVICE: self._pci_not_enabled,
            Action.PETARD_SET_DEVICE: self._set_plugin_device,
            Action.PETARD_GET_DEVICES: self._get_plugin_devices,
            Action.PETARD_GET_PLUGINS: self._get_plugins,
        }
        self._worker = threading.Thread(target=self._serve, name="fc_vmm", daemon=True)
        self._worker.start()

    # --- lock-free readers -------------------------------------------------------------------

    @property
    def phase(self) -> LifecyclePhase:
        return self._published[0]

    def instance_info(self) -> InstanceInfo:
        return InstanceInfo(self.instance_id, WIRE_STATE[self._published[0]].value, self.vmm_version)

    def resources_view(self) -> VmResources:
        """The configuration as of the last completed action (never mutated afterwards)."""
        return self._published[1]

    # --- the single writer -------------------------------------------------------------------

    def handle(self, action: Action, payload: Any = None) -> Any:
        """Apply one action in order with all others; raise ``VmmActionError`` on failure."""
        future: Future = Future()
        self._queue.put((action, payload, future))
        return future.result()

    def _serve(self) -> None:
        while True:
            action, payload, future = self._queue.get()
            try:
                check_allowed(self._phase, action)
                result = self._handlers[action](payload)
            except faults.VmmActionError as error:
                self._publish()
                future.set_exception(error)
            except Exception as error:  # a bug must answer the request, not kill the owner
                log.error("Internal error while handling %s: %r", action.value, error)
                self._publish()
                future.set_exception(faults.VmmActionError(f"Internal VMM error: {error}"))
            else:
                if self._phase is LifecyclePhase.UNINITIALIZED and self._resources.boot_specific_configured:
                    self._phase = LifecyclePhase.NOT_STARTED
                self._publish()
                future.set_result(result)

    def _publish(self) -> None:
        self._published = (self._phase, self._resources.snapshot())

    # --- actions -----------------------------------------------------------------------------

    def _set(self, name: str, boot_specific: bool = True) -> Callable[[Any], None]:
        def apply(value: Any) -> None:
            setattr(self._resources, name, value)
            if boot_specific:
                self._resources.boot_specific_configured = True

        return apply

    def _pre_boot_only(self, apply: Callable[[Any], None]) -> Callable[[Any], None]:
        """Device insertion after boot is PCI hotplug upstream; petard has no PCI."""

        def guarded(value: Any) -> None:
            if self._phase in (LifecyclePhase.RUNNING, LifecyclePhase.PAUSED):
                raise faults.VmmActionError(faults.PCI_NOT_ENABLED)
            apply(value)

        return guarded

    @staticmethod
    def _not_implemented(what: str) -> Callable[[Any], None]:
        def refuse(_: Any) -> None:
            raise faults.VmmActionError(faults.not_implemented(what))

        return refuse

    def _update_block_device(self, update: Any) -> None:
        """PATCH /drives/{id} after boot: a new backing file and/or rate limiter, applied by
        the block device on the VM's thread; the file is opened here so errors reach the caller."""
        from petard.core.vmm import drive_device_name

        position = next((i for i, d in enumerate(self._resources.drives) if d.drive_id == update.drive_id), None)
        machine = getattr(self._machine, "machine", None)
        if position is None or machine is None:
            raise faults.VmmActionError(faults.DEVICE_NOT_FOUND)
        if update.path_on_host is None and update.rate_limiter is None:
            raise faults.VmmActionError(faults.DRIVE_UPDATE_NEEDS_BACKEND)
        device = machine.device(drive_device_name(update.drive_id))
        fd = None
        if update.path_on_host is not None:
            try:
                fd = device.open_backing_file(update.path_on_host)
            except OSError as error:
                raise faults.VmmActionError(faults.drive_update_error(error, update.path_on_host)) from None
        device.ctx.clock.call_soon_threadsafe(
            lambda: device.update(fd=fd, path=update.path_on_host, rate_limiter=update.rate_limiter,
                                  replace_limiter=update.rate_limiter is not None))
        changes = {name: getattr(update, name) for name in ("path_on_host", "rate_limiter")
                   if getattr(update, name) is not None}
        drive = self._resources.drives[position]
        self._resources.drives[position] = drive.model_copy(update=changes) if hasattr(drive, "model_copy") \
            else dataclasses.replace(drive, **changes)

    # --- petard's namespace (/petard/...) ------------------------------------------------------

    def _set_plugin_device(self, request: Any) -> None:
        from petard.core.plugin_devices import PluginDeviceConfig
        from petard.core.plugins import get_plugin_manager

        self._resources.set_plugin_device(PluginDeviceConfig.from_request(request), get_plugin_manager())

    def _get_plugin_devices(self, _: Any) -> list[dict[str, Any]]:
        return [config.to_json() for config in self._resources.plugin_devices]

    @staticmethod
    def _get_plugins(_: Any) -> list[dict[str, Any]]:
        from petard.core.plugins import get_plugin_manager

        return [dataclasses.asdict(info) for info in get_plugin_manager().plugin_infos()]

    @staticmethod
    def _device_not_found(_: Any) -> None:
        raise faults.VmmActionError(faults.DEVICE_NOT_FOUND)

    @staticmethod
    def _pci_not_enabled(_: Any) -> None:
        raise faults.VmmActionError(faults.PCI_NOT_ENABLED)

    # The balloon: configured before boot, then asked and changed on the running device (its
    # errors carry upstream's prefixes).

    def _get_balloon(self, _: Any) -> Any:
        if self._machine is not None:
            return self._on_balloon(faults.INTERNAL_VMM_ERROR, lambda balloon: balloon.config())
        if self._resources.balloon is None:
            raise faults.VmmActionError(faults.BALLOON_NOT_FOUND)
        return self._resources.balloon

    def _balloon_statistics(self, _: Any) -> Any:
        return self._on_balloon(faults.INTERNAL_VMM_ERROR, lambda balloon: balloon.statistics())

    def _update_balloon(self, update: Any) -> None:
        self._on_balloon(faults.BALLOON_UPDATE_ERROR, lambda balloon: balloon.set_target_mib(update.amount_mib))
        self._remember_balloon(amount_mib=update.amount_mib)

    def _update_balloon_statistics(self, update: Any) -> None:
        interval = update.stats_polling_interval_s
        self._on_balloon(faults.BALLOON_UPDATE_ERROR, lambda balloon: balloon.set_stats_interval(interval))
        self._remember_balloon(stats_polling_interval_s=interval)

    def _on_balloon(self, prefix: str, call: Callable[[Any], Any]) -> Any:
        if self._machine is None or self._resources.balloon is None:
            raise faults.VmmActionError(prefix + faults.DEVICE_NOT_FOUND_ON_ACTION)
        try:
            return self._machine.call_device(BALLOON_DEVICE_NAME, call)
        except DeviceRequestError as error:
            raise faults.VmmActionError(prefix + faults.balloon_device_error(str(error))) from None

    def _remember_balloon(self, **changes: Any) -> None:
        balloon = self._resources.balloon
        self._resources.balloon = balloon.model_copy(update=changes) if hasattr(balloon, "model_copy") \
            else dataclasses.replace(balloon, **changes)

    def _configure_logger(self, config: Any) -> None:
        self._logger.configure(
            log_path=config.log_path,
            level=config.level,
            show_level=config.show_level,
            show_origin=config.show_log_origin,
            module=config.module,
        )

    def _flush_metrics(self, _: Any) -> None:
        self.metrics.flush()  # a no-op when no metrics destination is configured, as upstream

    def _configure_metrics(self, config: Any) -> None:
        self.metrics.configure(config.metrics_path, self.instance_id if config.emit_id else None)

    def _load_snapshot(self, _: Any) -> None:
        if self._resources.boot_specific_configured:
            raise faults.VmmActionError(faults.LOAD_SNAPSHOT_NOT_ALLOWED)
        raise faults.VmmActionError(faults.not_implemented("snapshot loading"))

    # MMDS: a JSON object with a size limit; PATCH is an RFC 7396 merge patch. Like upstream,
    # the data store is "not initialized" until the first PUT, and GET shows it as {} then.

    def _get_mmds(self, _: Any) -> Any:
        return {} if self._resources.mmds_data is None else self._resources.mmds_data

    def _check_mmds(self, value: Any) -> None:
        if not isinstance(value, dict):
            raise faults.VmmActionError(faults.MMDS_NOT_AN_OBJECT)
        if len(json.dumps(value, separators=(",", ":"))) > self._mmds_size_limit:
            raise faults.VmmActionError(faults.MMDS_LIMIT_EXCEEDED, status=413)

    def _put_mmds(self, value: Any) -> None:
        self._check_mmds(value)
        self._resources.mmds_data = value

    def _patch_mmds(self, patch: Any) -> None:
        if self._resources.mmds_data is None:
            raise faults.VmmActionError(faults.MMDS_NOT_INITIALIZED)
        merged = merge_patch(self._resources.mmds_data, patch)
        self._check_mmds(merged)
        self._resources.mmds_data = merged

    # Lifecycle

    def _start(self, _: Any) -> None:
        resources = self._resources
        if resources.boot_source is None:
            raise faults.VmmActionError(faults.MISSING_KERNEL_CONFIG)
        unsupported = resources.unsupported_devices()
        if unsupported:
            raise faults.VmmActionError(faults.start_error(
                "petard cannot build these configured devices yet: " + ", ".join(unsupported)
            ))
        self._phase = LifecyclePhase.STARTING
        self._publish()
        try:
            self._machine = self._starter(resources.snapshot(), self._on_machine_exit)
        except faults.VmmActionError:
            self._phase = LifecyclePhase.NOT_STARTED
            raise
        except Exception as error:
            self._phase = LifecyclePhase.NOT_STARTED
            raise faults.VmmActionError(faults.start_error(str(error))) from error
        if self._phase is LifecyclePhase.STARTING:
            self._phase = LifecyclePhase.RUNNING
        self.metrics.flush()

    def _pause(self, _: Any) -> None:
        if self._phase is LifecyclePhase.RUNNING and self._machine is not None:
            self._machine.pause()
            self._phase = LifecyclePhase.PAUSED

    def _resume(self, _: Any) -> None:
        if self._phase is LifecyclePhase.PAUSED and self._machine is not None:
            self._machine.resume()
            self._phase = LifecyclePhase.RUNNING

    def _on_machine_exit(self, exit_code: int) -> None:
        """Called by the machine (any thread) when the guest powers off, resets or fails."""
        self._phase = LifecyclePhase.SHUTDOWN
        self._publish()
        self._exit_code = exit_code
        self._exited.set()

    # --- the end -----------------------------------------------------------------------------

    def wait_for_exit(self, timeout: float | None = None) -> int | None:
        """Block until the machine ended; returns its exit code (None on timeout)."""
        self._exited.wait(timeout)
        return self._exit_code

    def shutdown(self) -> None:
        """Stop the machine if one runs (process exit, signals)."""
        machine = self._machine
        if machine is not None:
            machine.stop()


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 JSON merge patch (upstream's ``json_patch::merge``)."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result

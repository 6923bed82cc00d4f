"""Turn (method, path, body) into a controller action, exactly as upstream's ``parsed_request.rs``.

Routing is by the first path segment and the presence of a body, like upstream, so the
same malformed request gets the same fault (``Empty PUT request.``, ``Invalid request
method and/or path: PATCH boot-source.``...). Bodies are decoded with serde's rules
(:mod:`petard.api.serde`). The result is a :class:`ParsedRequest`; the caller hands its
action to the controller.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from pydantic import BaseModel

from petard.api import models, wire
from petard.api.serde import SerdeError, decode, decode_json_value
from petard.core.lifecycle import Action


class RequestError(Exception):
    """A request refused before reaching the VMM; ``str()`` is the fault message."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


@dataclass
class ParsedRequest:
    action: Action
    payload: Any = None
    deprecation: str | None = None
    # Which metrics counter pair (group, prefix) this request updates.
    metric: tuple[str, str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _decode(model: type[BaseModel], body: str) -> Any:
    try:
        return decode(model, body)
    except SerdeError as error:
        raise RequestError(wire.deserialize_error(str(error))) from None


def checked_id(id_from_path: str | None) -> str:
    if not id_from_path:
        raise RequestError(wire.EMPTY_ID)
    if not all(char == "_" or char.isalnum() for char in id_from_path):
        raise RequestError(wire.INVALID_ID)
    return id_from_path


def _with_id(model: type[BaseModel], id_field: str, action: Action, metric: tuple[str, str]):
    def parse(body: str, tokens: list[str]) -> ParsedRequest:
        resource_id = checked_id(tokens[0] if tokens else None)
        config = _decode(model, body)
        if getattr(config, id_field) != resource_id:
            raise RequestError(wire.ID_MISMATCH)
        return ParsedRequest(action, config, metric=metric)

    return parse


def _simple(model: type[BaseModel], action: Action, metric: tuple[str, str] | None = None):
    def parse(body: str, tokens: list[str]) -> ParsedRequest:
        return ParsedRequest(action, _decode(model, body), metric=metric)

    return parse


# --- GET -----------------------------------------------------------------------------------


def _get(path: str, tokens: list[str]) -> ParsedRequest:
    if path == "":
        return ParsedRequest(Action.GET_VM_INSTANCE_INFO, metric=("get_api_requests", "instance_info"))
    if path == "version":
        return ParsedRequest(Action.GET_VMM_VERSION, metric=("get_api_requests", "vmm_version"))
    if path == "vm" and tokens[:1] == ["config"]:
        return ParsedRequest(Action.GET_FULL_VM_CONFIG)
    if path == "machine-config":
        return ParsedRequest(Action.GET_VM_MACHINE_CONFIG, metric=("get_api_requests", "machine_cfg"))
    if path == "mmds":
        return ParsedRequest(Action.GET_MMDS, metric=("get_api_requests", "mmds"))
    if path == "hotplug" and tokens[:1] == ["memory"]:
        return ParsedRequest(Action.GET_MEMORY_HOTPLUG_STATUS)
    if path == "balloon":
        return _get_balloon(tokens)
    if path == PETARD_NAMESPACE:
        return _get_petard(tokens)
    raise RequestError(wire.invalid_path_method("GET", path))


def _get_balloon(tokens: list[str]) -> ParsedRequest:
    if not tokens:
        return ParsedRequest(Action.GET_BALLOON_CONFIG)
    if tokens[0] == "statistics":
        return ParsedRequest(Action.GET_BALLOON_STATS)
    if tokens[0] == "hinting":
        if tokens[1:2] == ["status"]:
            return ParsedRequest(Action.GET_FREE_PAGE_HINTING_STATUS)
        rest = tokens[1] if len(tokens) > 1 else ""
        raise RequestError(f"Unrecognized GET request path `/hinting/{rest}`.")
    raise RequestError(f"Unrecognized GET request path `{tokens[0]}`.")


# --- PUT -----------------------------------------------------------------------------------


def _put_actions(body: str, tokens: list[str]) -> ParsedRequest:
    action_body = _decode(models.InstanceActionInfo, body)
    kind = action_body.action_type
    metric = ("put_api_requests", "actions")
    if kind is models.ActionType.SendCtrlAltDel:
        raise RequestError(wire.CTRL_ALT_DEL_UNSUPPORTED)
    if kind is models.ActionType.FlushMetrics:
        return ParsedRequest(Action.FLUSH_METRICS, metric=metric)
    return ParsedRequest(Action.START_MICRO_VM, metric=metric)


def _put_machine_config(body: str, tokens: list[str]) -> ParsedRequest:
    config = _decode(models.MachineConfig, body)
    update = models.MachineConfigUpdate(**config.model_dump())
    deprecation = wire.DEPRECATED_CPU_TEMPLATE_PUT if config.cpu_template is not None else None
    return ParsedRequest(Action.UPDATE_MACHINE_CONFIGURATION, update, deprecation, ("put_api_requests", "machine_cfg"))


def _put_vsock(body: str, tokens: list[str]) -> ParsedRequest:
    config = _decode(models.Vsock, body)
    deprecation = wire.DEPRECATED_VSOCK_ID if config.vsock_id is not None else None
    return ParsedRequest(Action.SET_VSOCK_DEVICE, config, deprecation, ("put_api_requests", "vsock"))


def _put_mmds(body: str, tokens: list[str]) -> ParsedRequest:
    if not tokens:
        try:
            value = decode_json_value(body)
        except SerdeError as error:
            raise RequestError(wire.deserialize_error(str(error))) from None
        return ParsedRequest(Action.PUT_MMDS, value, metric=("put_api_requests", "mmds"))
    if tokens[0] == "config":
        config = _decode(models.MmdsConfig, body)
        deprecation = wire.DEPRECATED_MMDS_V1 if config.version is models.MmdsVersion.V1 else None
        return ParsedRequest(Action.SET_MMDS_CONFIGURATION, config, deprecation, ("put_api_requests", "mmds"))
    raise RequestError(f"Unrecognized PUT request path `{tokens[0]}`.")


def _put_snapshot(body: str, tokens: list[str]) -> ParsedRequest:
    if not tokens:
        raise RequestError(wire.MISSING_SNAPSHOT_OPERATION)
    if tokens[0] == "create":
        return ParsedRequest(Action.CREATE_SNAPSHOT, _decode(models.SnapshotCreateParams, body))
    if tokens[0] == "load":
        config = _decode(models.SnapshotLoadParams, body)
        if config.mem_backend is not None and config.mem_file_path is not None:
            raise RequestError(wire.deserialize_error(wire.SNAPSHOT_TOO_MANY_MEM))
        if config.mem_backend is None and config.mem_file_path is None:
            raise RequestError(wire.deserialize_error(wire.SNAPSHOT_MISSING_MEM))
        deprecated = config.mem_file_path is not None or config.enable_diff_snapshots
        return ParsedRequest(Action.LOAD_SNAPSHOT, config, wire.DEPRECATED_SNAPSHOT_LOAD if deprecated else None)
    raise RequestError(wire.invalid_path_method("PUT", f"/snapshot/{tokens[0]}"))


def _put_hotplug(body: str, tokens: list[str]) -> ParsedRequest:
    if tokens[:1] != ["memory"]:
        raise RequestError(wire.invalid_path_method("PUT", "hotplug"))
    return ParsedRequest(Action.SET_MEMORY_HOTPLUG_DEVICE, _decode(models.MemoryHotplugConfig, body),
                         metric=("put_api_requests", "hotplug_memory"))


# --- petard's own namespace: /petard/... (not upstream; documented in docs/plugins.md) -------

PETARD_NAMESPACE = "petard"
PETARD_DEVICES = "devices"
PETARD_PLUGINS = "plugins"


def _get_petard(tokens: list[str]) -> ParsedRequest:
    if tokens == [PETARD_DEVICES]:
        return ParsedRequest(Action.PETARD_GET_DEVICES)
    if tokens == [PETARD_PLUGINS]:
        return ParsedRequest(Action.PETARD_GET_PLUGINS)
    raise RequestError(wire.invalid_path_method("GET", "/" + "/".join([PETARD_NAMESPACE, *tokens])))


def _put_petard(body: str, tokens: list[str]) -> ParsedRequest:
    if tokens[:1] != [PETARD_DEVICES] or len(tokens) > 2:
        raise RequestError(wire.invalid_path_method("PUT", "/" + "/".join([PETARD_NAMESPACE, *tokens])))
    device_id = checked_id(tokens[1] if len(tokens) > 1 else None)
    config = _decode(models.PetardDevice, body)
    if config.device_id is not None and config.device_id != device_id:
        raise RequestError(wire.ID_MISMATCH)
    if config.options is not None and not isinstance(config.options, dict):
        raise RequestError(wire.deserialize_error("`options` must be a JSON object"))
    return ParsedRequest(Action.PETARD_SET_DEVICE, config.model_copy(update={"device_id": device_id}))


_PUT: dict[str, Callable[[str, list[str]], ParsedRequest]] = {
    PETARD_NAMESPACE: _put_petard,
    "actions": _put_actions,
    "balloon": _simple(models.Balloon, Action.SET_BALLOON_DEVICE),
    "boot-source": _simple(models.BootSource, Action.CONFIGURE_BOOT_SOURCE, ("put_api_requests", "boot_source")),
    "cpu-config": _simple(models.CpuConfig, Action.PUT_CPU_CONFIGURATION, ("put_api_requests", "cpu_cfg")),
    "drives": _with_id(models.Drive, "drive_id", Action.INSERT_BLOCK_DEVICE, ("put_api_requests", "drive")),
    "pmem": _with_id(models.Pmem, "id", Action.INSERT_PMEM_DEVICE, ("put_api_requests", "pmem")),
    "logger": _simple(models.Logger, Action.CONFIGURE_LOGGER, ("put_api_requests", "logger")),
    "serial": _simple(models.SerialDevice, Action.CONFIGURE_SERIAL, ("put_api_requests", "serial")),
    "machine-config": _put_machine_config,
    "metrics": _simple(models.Metrics, Action.CONFIGURE_METRICS, ("put_api_requests", "metrics")),
    "mmds": _put_mmds,
    "network-interfaces": _with_id(models.NetworkInterface, "iface_id", Action.INSERT_NETWORK_DEVICE,
                                   ("put_api_requests", "network")),
    "snapshot": _put_snapshot,
    "vsock": _put_vsock,
    "entropy": _simple(models.EntropyDevice, Action.SET_ENTROPY_DEVICE, ("put_api_requests", "entropy")),
    "hotplug": _put_hotplug,
}

# --- PATCH ---------------------------------------------------------------------------------


def _patch_machine_config(body: str, tokens: list[str]) -> ParsedRequest:
    update = _decode(models.MachineConfigUpdate, body)
    if update.is_empty():
        raise RequestError(wire.empty_body("PATCH"))
    deprecation = wire.DEPRECATED_CPU_TEMPLATE_PATCH if update.cpu_template is not None else None
    return ParsedRequest(Action.UPDATE_MACHINE_CONFIGURATION, update, deprecation, ("patch_api_requests", "machine_cfg"))


def _patch_mmds(body: str, tokens: list[str]) -> ParsedRequest:
    try:
        value = decode_json_value(body)
    except SerdeError as error:
        raise RequestError(wire.deserialize_error(str(error))) from None
    return ParsedRequest(Action.PATCH_MMDS, value, metric=("patch_api_requests", "mmds"))


def _patch_vm(body: str, tokens: list[str]) -> ParsedRequest:
    state = _decode(models.Vm, body).state
    return ParsedRequest(Action.PAUSE if state is models.VmState.Paused else Action.RESUME)


def _patch_hotplug(body: str, tokens: list[str]) -> ParsedRequest:
    if tokens[:1] != ["memory"]:
        raise RequestError(wire.invalid_path_method("PATCH", "hotplug"))
    return ParsedRequest(Action.UPDATE_MEMORY_HOTPLUG_SIZE, _decode(models.MemoryHotplugSizeUpdate, body),
                         metric=("patch_api_requests", "hotplug_memory"))


def _patch_balloon(body: str | None, tokens: list[str]) -> ParsedRequest:
    first = tokens[0] if tokens else None
    if first == "statistics" and body is not None:
        return ParsedRequest(Action.UPDATE_BALLOON_STATISTICS, _decode(models.BalloonStatsUpdate, body))
    if first == "hinting":
        second = tokens[1] if len(tokens) > 1 else None
        if second == "start":
            command = _decode(models.BalloonStartCmd, body) if body else models.BalloonStartCmd()
            return ParsedRequest(Action.START_FREE_PAGE_HINTING, command)
        if second == "stop":
            return ParsedRequest(Action.STOP_FREE_PAGE_HINTING)
        raise RequestError(f"Unrecognized PATCH request path `/hinting/{second or ''}`.")
    if body is not None:
        return ParsedRequest(Action.UPDATE_BALLOON, _decode(models.BalloonUpdate, body))
    raise RequestError(wire.empty_body("PATCH"))


_PATCH: dict[str, Callable[[str, list[str]], ParsedRequest]] = {
    "drives": _with_id(models.PartialDrive, "drive_id", Action.UPDATE_BLOCK_DEVICE, ("patch_api_requests", "drive")),
    "machine-config": _patch_machine_config,
    "mmds": _patch_mmds,
    "network-interfaces": _with_id(models.PartialNetworkInterface, "iface_id", Action.UPDATE_NETWORK_INTERFACE,
                                   ("patch_api_requests", "network")),
    "pmem": _with_id(models.PartialPmem, "id", Action.UPDATE_PMEM_DEVICE, ("patch_api_requests", "pmem")),
    "vm": _patch_vm,
    "hotplug": _patch_hotplug,
}

_DELETE = {"drives", "pmem", "network-interfaces"}


def parse_request(method: str, path: str, body: str | None) -> ParsedRequest:
    """Route one request; ``body`` is None when the request has none (or it is empty)."""
    segments = [segment for segment in path.lstrip("/").split("/")]
    if segments and segments[-1] == "":
        segments.pop()  # Rust's split_terminator drops one trailing empty piece
    head = segments[0] if segments else ""
    tokens = segments[1:]
    if method == "GET":
        if body is not None:
            raise RequestError(wire.empty_body("GET"))
        return _get(head, tokens)
    if method == "PUT":
        if body is None:
            raise RequestError(wire.empty_body("PUT"))
        parser = _PUT.get(head)
        if parser is None:
            raise RequestError(wire.invalid_path_method("PUT", head))
        return parser(body, tokens)
    if method == "PATCH":
        if head == "balloon":
            return _patch_balloon(body, tokens)
        if body is None:
            raise RequestError(wire.empty_body("PATCH"))
        parser = _PATCH.get(head)
        if parser is None:
            raise RequestError(wire.invalid_path_method("PATCH", head))
        return parser(body, tokens)
    if method == "DELETE":
        if body is not None:
            raise RequestError(wire.empty_body("DELETE"))
        if head in _DELETE:
            return ParsedRequest(Action.HOT_UNPLUG_DEVICE, (head, checked_id(tokens[0] if tokens else None)))
        raise RequestError(wire.invalid_path_method("DELETE", head))
    raise RequestError(wire.invalid_path_method(method, head))

"""``--config-file``: replay a Firecracker JSON configuration as API requests, then start the VM.

Each section becomes the request a client would send (``machine-config`` → ``PUT
/machine-config``...), in upstream's order (``resources.rs::from_json``), through the same
:class:`~petard.api.dispatch.Dispatcher` as HTTP, so validation and fault texts are
identical. Unknown top-level keys are ignored, as upstream does, except petard's own
``"petard"`` section (plugin devices), replayed last as ``PUT /petard/devices/{id}``.
"""

from __future__ import annotations

import json
from typing import Any, Iterator

from petard.api import serde, wire
from petard.api.dispatch import Dispatcher


# petard's extension of the file (upstream ignores unknown top-level keys, so a file with it
# still works with Firecracker, minus the plugin devices).
PETARD_SECTION = "petard"


class ConfigFileError(Exception):
    """The configuration failed; ``str()`` is the reason upstream would log."""


def _requests(config: dict[str, Any], metadata: Any) -> Iterator[tuple[str, str, Any]]:
    """(method, path, body) in upstream's application order."""
    if "logger" in config:
        yield "PUT", "/logger", config["logger"]
    if "metrics" in config:
        yield "PUT", "/metrics", config["metrics"]
    if config.get("machine-config") is not None:
        yield "PUT", "/machine-config", config["machine-config"]
    cpu_config = config.get("cpu-config")
    if cpu_config is not None:
        if isinstance(cpu_config, str):
            try:
                with open(cpu_config, encoding="utf-8") as template:
                    cpu_config = json.load(template)
            except (OSError, ValueError) as error:
                raise ConfigFileError(f"Unable to read the CPU template {cpu_config}: {error}") from None
        yield "PUT", "/cpu-config", cpu_config
    yield "PUT", "/boot-source", config["boot-source"]
    for drive in config["drives"]:
        yield "PUT", f"/drives/{_id(drive, 'drive_id')}", drive
    for iface in config.get("network-interfaces") or []:
        yield "PUT", f"/network-interfaces/{_id(iface, 'iface_id')}", iface
    if config.get("vsock") is not None:
        yield "PUT", "/vsock", config["vsock"]
    if config.get("balloon") is not None:
        yield "PUT", "/balloon", config["balloon"]
    if metadata is not None:
        yield "PUT", "/mmds", metadata
    if config.get("mmds-config") is not None:
        yield "PUT", "/mmds/config", config["mmds-config"]
    if config.get("entropy") is not None:
        yield "PUT", "/entropy", config["entropy"]
    for pmem in config.get("pmem") or []:
        yield "PUT", f"/pmem/{_id(pmem, 'id')}", pmem
    if config.get("memory-hotplug") is not None:
        yield "PUT", "/hotplug/memory", config["memory-hotplug"]
    yield from _petard_requests(config.get(PETARD_SECTION))


def _petard_requests(section: Any) -> Iterator[tuple[str, str, Any]]:
    """petard's own section, ``"petard": {"devices": [{"device_id": ..., "type": ...}, ...]}``,
    as ``PUT /petard/devices/{device_id}`` requests after upstream's (see docs/plugins.md)."""
    if section is None:
        return
    if not isinstance(section, dict) or set(section) - {"devices"}:
        raise ConfigFileError(f'Invalid JSON: "{PETARD_SECTION}" must be an object with the key "devices"')
    devices = section.get("devices") or []
    if not isinstance(devices, list):
        raise ConfigFileError(f'Invalid JSON: "{PETARD_SECTION}.devices" must be a list')
    for device in devices:
        yield "PUT", f"/petard/devices/{_id(device, 'device_id')}", device


def _id(section: Any, key: str) -> str:
    return str(section.get(key, "")) if isinstance(section, dict) else ""


def _check_top_level(text: str) -> dict[str, Any]:
    try:
        config = serde.decode_json_value(text)
    except serde.SerdeError as error:
        raise ConfigFileError(f"Invalid JSON: {error}") from None
    if not isinstance(config, dict):
        raise ConfigFileError("Invalid JSON: invalid type: expected struct VmmConfig")
    for required in ("boot-source", "drives"):
        if required not in config:
            raise ConfigFileError(f"Invalid JSON: missing field `{required}`")
    return config


def replay(dispatcher: Dispatcher, text: str, metadata_text: str | None = None) -> None:
    """Apply the configuration and start the microVM; raise :class:`ConfigFileError` on the first failure."""
    config = _check_top_level(text)
    metadata = None
    if metadata_text is not None:
        try:
            metadata = serde.decode_json_value(metadata_text)
        except serde.SerdeError as error:
            raise ConfigFileError(f"MMDS error: metadata provided not valid json: {error}") from None
    for method, path, body in _requests(config, metadata):
        _send(dispatcher, method, path, body)
    _send(dispatcher, "PUT", "/actions", {"action_type": "InstanceStart"})


def _send(dispatcher: Dispatcher, method: str, path: str, body: Any) -> None:
    reply = dispatcher.dispatch(method, path, json.dumps(body))
    if reply.status >= 400:
        message = reply.body.get("fault_message") or reply.body.get("error")
        raise ConfigFileError(message)


def failed_message(error: ConfigFileError) -> str:
    return wire.CONFIG_FILE_FAILED.format(error=error)

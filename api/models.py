"""Pydantic models of Firecracker's API bodies, field for field as upstream's Rust structs.

Names, field order, defaults and optionality follow ``src/vmm/src/vmm_config/`` upstream:
``Optional[...]`` exactly where the Rust type is ``Option<...>`` (so explicit ``null`` is
accepted there and nowhere else), ``= default`` where the Rust field has ``#[serde(default)]``.
Integer widths use the markers of :mod:`petard.api.serde` so type errors read like serde's.
Models with ``lenient`` extra fields mirror upstream structs without ``deny_unknown_fields``.
"""

from __future__ import annotations

import enum
import ipaddress
import re
from typing import Annotated, Any, ClassVar, Optional

import pydantic
from pydantic import BaseModel

from petard.core.logger import parse_level
from petard.api.serde import (
    U8,
    U16,
    U32,
    U64,
    CustomCheck,
    JsonValue,
    ModelConfig,
    PathStr,
    Str,
    Usize,
)


class Strict(BaseModel):
    """Base of the models upstream marks ``deny_unknown_fields``."""

    model_config = ModelConfig.config


class Lenient(BaseModel):
    """Base of the models upstream accepts unknown fields in (they are dropped)."""

    model_config = pydantic.ConfigDict(extra="ignore", frozen=True, defer_build=True)


# --- enums (serde unit variants; the value is the wire string) ---------------------------


class CacheType(enum.Enum):
    Unsafe = "Unsafe"
    Writeback = "Writeback"


class FileEngineType(enum.Enum):
    Async = "Async"
    Sync = "Sync"


class HugePageConfig(enum.Enum):
    None_ = "None"
    Transparent = "Transparent"
    Hugetlbfs2M = "2M"


class StaticCpuTemplate(enum.Enum):
    C3 = "C3"
    T2 = "T2"
    T2S = "T2S"
    T2CL = "T2CL"
    T2A = "T2A"
    V1N1 = "V1N1"
    None_ = "None"


class MmdsVersion(enum.Enum):
    V1 = "V1"
    V2 = "V2"


class ActionType(enum.Enum):
    FlushMetrics = "FlushMetrics"
    InstanceStart = "InstanceStart"
    SendCtrlAltDel = "SendCtrlAltDel"


class VmState(enum.Enum):
    Paused = "Paused"
    Resumed = "Resumed"


class SnapshotType(enum.Enum):
    Diff = "Diff"
    Full = "Full"


class MemBackendType(enum.Enum):
    File = "File"
    Uffd = "Uffd"


class SnapshotLoadHugePageConfig(enum.Enum):
    Snapshot = "Snapshot"
    None_ = "None"
    Transparent = "Transparent"
    Hugetlbfs2M = "2M"


# --- custom deserializers ------------------------------------------------------------------

_MAC = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")


def _check_mac(text: Any) -> str | None:
    return None if _MAC.match(text) else "The provided MAC address is invalid."


def _check_ipv4(text: Any) -> str | None:
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        return "invalid IPv4 address syntax"
    return None


def _check_level(text: Any) -> str | None:
    return None if parse_level(text) else f"unknown variant `{text}`, expected one of `Off`, `Trace`, `Debug`, `Info`, `Warning`, `Error`"


MacAddr = Annotated[str, CustomCheck(_check_mac)]
Ipv4Addr = Annotated[str, CustomCheck(_check_ipv4)]
Level = Annotated[str, CustomCheck(_check_level)]

# --- shared pieces -------------------------------------------------------------------------


class TokenBucket(Lenient):
    rust_name: ClassVar[str] = "TokenBucketConfig"
    size: U64
    one_time_burst: Optional[U64] = None
    refill_time: U64


class RateLimiter(Strict):
    rust_name: ClassVar[str] = "RateLimiterConfig"
    bandwidth: Optional[TokenBucket] = None
    ops: Optional[TokenBucket] = None


# --- machine, boot, cpu --------------------------------------------------------------------


class MachineConfig(Strict):
    vcpu_count: U8
    mem_size_mib: Usize
    smt: bool = False
    cpu_template: Optional[StaticCpuTemplate] = None
    track_dirty_pages: bool = False
    huge_pages: HugePageConfig = HugePageConfig.None_


class MachineConfigUpdate(Strict):
    vcpu_count: Optional[U8] = None
    mem_size_mib: Optional[Usize] = None
    smt: Optional[bool] = None
    cpu_template: Optional[StaticCpuTemplate] = None
    track_dirty_pages: Optional[bool] = None
    huge_pages: Optional[HugePageConfig] = None

    def is_empty(self) -> bool:
        return all(getattr(self, name) is None for name in type(self).model_fields)


class BootSource(Strict):
    rust_name: ClassVar[str] = "BootSourceConfig"
    kernel_image_path: Str
    initrd_path: Optional[Str] = None
    boot_args: Optional[Str] = None


class VcpuFeatures(Lenient):
    index: U32
    bitmap: Str


class RegisterModifier(Lenient):
    addr: Str
    bitmap: Str


class CpuConfig(Strict):
    rust_name: ClassVar[str] = "CustomCpuTemplate"
    kvm_capabilities: list[Str] = []
    vcpu_features: list[VcpuFeatures] = []
    reg_modifiers: list[RegisterModifier] = []

    @staticmethod
    def serde_validate(value: dict) -> str | None:
        for capability in value.get("kvm_capabilities", []):
            if not re.fullmatch(r"!?\d+", capability):
                return f"Failed to parse string: {capability} as a kvm capability"
        for item in value.get("vcpu_features", []) + value.get("reg_modifiers", []):
            if not re.fullmatch(r"0b[01xX_]{1,128}", item["bitmap"]):
                return f"Failed to parse string: {item['bitmap']} as a bitmap"
        for modifier in value.get("reg_modifiers", []):
            try:
                int(modifier["addr"], 0)
            except ValueError:
                return f"Failed to parse string: {modifier['addr']} as an address"
        return None


# --- block, net, vsock, entropy, pmem, balloon, memory hotplug -----------------------------


class Drive(Strict):
    rust_name: ClassVar[str] = "BlockDeviceConfig"
    drive_id: Str
    partuuid: Optional[Str] = None
    is_root_device: bool
    cache_type: CacheType = CacheType.Unsafe
    is_read_only: Optional[bool] = None
    path_on_host: Optional[Str] = None
    rate_limiter: Optional[RateLimiter] = None
    io_engine: Optional[FileEngineType] = None
    socket: Optional[Str] = None


class PartialDrive(Strict):
    rust_name: ClassVar[str] = "BlockDeviceUpdateConfig"
    drive_id: Str
    path_on_host: Optional[Str] = None
    rate_limiter: Optional[RateLimiter] = None


class NetworkInterface(Strict):
    rust_name: ClassVar[str] = "NetworkInterfaceConfig"
    iface_id: Str
    host_dev_name: Str
    guest_mac: Optional[MacAddr] = None
    mtu: Optional[U16] = None
    rx_rate_limiter: Optional[RateLimiter] = None
    tx_rate_limiter: Optional[RateLimiter] = None


class PartialNetworkInterface(Strict):
    rust_name: ClassVar[str] = "NetworkInterfaceUpdateConfig"
    iface_id: Str
    rx_rate_limiter: Optional[RateLimiter] = None
    tx_rate_limiter: Optional[RateLimiter] = None


class Vsock(Strict):
    rust_name: ClassVar[str] = "VsockDeviceConfig"
    vsock_id: Optional[Str] = None
    guest_cid: U32
    uds_path: Str


class EntropyDevice(Strict):
    rust_name: ClassVar[str] = "EntropyDeviceConfig"
    rate_limiter: Optional[RateLimiter] = None


class Pmem(Strict):
    rust_name: ClassVar[str] = "PmemConfig"
    id: Str
    path_on_host: Str
    root_device: bool = False
    read_only: bool = False
    rate_limiter: Optional[RateLimiter] = None


class PartialPmem(Strict):
    rust_name: ClassVar[str] = "PmemDeviceUpdateConfig"
    id: Str
    rate_limiter: Optional[RateLimiter] = None


class Balloon(Strict):
    rust_name: ClassVar[str] = "BalloonDeviceConfig"
    amount_mib: U32
    deflate_on_oom: bool
    stats_polling_interval_s: U16 = 0
    free_page_hinting: bool = False
    free_page_reporting: bool = False


class BalloonUpdate(Strict):
    rust_name: ClassVar[str] = "BalloonUpdateConfig"
    amount_mib: U32


class BalloonStatsUpdate(Strict):
    rust_name: ClassVar[str] = "BalloonUpdateStatsConfig"
    stats_polling_interval_s: U16


class BalloonStartCmd(Strict):
    rust_name: ClassVar[str] = "StartHintingCmd"
    acknowledge_on_stop: bool = True


class MemoryHotplugConfig(Strict):
    total_size_mib: U32
    block_size_mib: U32 = 2
    slot_size_mib: U32 = 128


class MemoryHotplugSizeUpdate(Strict):
    requested_size_mib: U32


# --- mmds, logger, metrics, serial ---------------------------------------------------------


class MmdsConfig(Strict):
    version: MmdsVersion = MmdsVersion.V1
    network_interfaces: list[Str]
    ipv4_address: Optional[Ipv4Addr] = None
    imds_compat: bool = False


class Logger(Strict):
    rust_name: ClassVar[str] = "LoggerConfig"
    log_path: Optional[PathStr] = None
    level: Optional[Level] = None
    show_level: Optional[bool] = None
    show_log_origin: Optional[bool] = None
    module: Optional[Str] = None


class Metrics(Lenient):
    rust_name: ClassVar[str] = "MetricsConfig"
    metrics_path: PathStr
    emit_id: bool = False
    properties: Optional[dict[str, Str]] = None


class SerialDevice(Strict):
    rust_name: ClassVar[str] = "SerialConfig"
    serial_out_path: Optional[PathStr] = None
    rate_limiter: Optional[TokenBucket] = None


# --- actions, vm state, snapshots ----------------------------------------------------------


class InstanceActionInfo(Strict):
    rust_name: ClassVar[str] = "ActionBody"
    action_type: ActionType


class Vm(Strict):
    state: VmState


class SnapshotCreateParams(Strict):
    rust_name: ClassVar[str] = "CreateSnapshotParams"
    snapshot_type: SnapshotType = SnapshotType.Full
    snapshot_path: PathStr
    mem_file_path: PathStr


class MemBackend(Strict):
    rust_name: ClassVar[str] = "MemBackendConfig"
    backend_path: PathStr
    backend_type: MemBackendType


class NetworkOverride(Lenient):
    iface_id: Str
    host_dev_name: Str


class VsockOverride(Lenient):
    uds_path: Str


class SnapshotLoadParams(Strict):
    rust_name: ClassVar[str] = "LoadSnapshotConfig"
    snapshot_path: PathStr
    mem_file_path: Optional[PathStr] = None
    mem_backend: Optional[MemBackend] = None
    enable_diff_snapshots: bool = False
    track_dirty_pages: bool = False
    resume_vm: bool = False
    network_overrides: list[NetworkOverride] = []
    vsock_override: Optional[VsockOverride] = None
    clock_realtime: bool = False
    huge_pages: SnapshotLoadHugePageConfig = SnapshotLoadHugePageConfig.Snapshot


MmdsValue = JsonValue


# --- petard's own namespace (not upstream; see docs/plugins.md) ---------------------------


class PetardDevice(Strict):
    """``PUT /petard/devices/{device_id}``: attach a device provided by a plugin (pre-boot).

    ``type`` names a device type (``petard plugins`` lists them); ``address`` and ``gsis``
    default to the next free virtio-mmio slot and GSIs; ``options`` is a JSON object
    validated by the device type's own ``options_model``."""

    rust_name: ClassVar[str] = "PetardDevice"
    device_id: Optional[Str] = None
    type: Str
    address: Optional[U64] = None
    gsis: Optional[list[U32]] = None
    options: Any = None

"""The microVM's lifecycle: phases, their wire states, and which action is legal in which phase.

Six internal phases collapse to Firecracker's three wire states for ``GET /``. The table
below is the one place that decides legality; its split into pre-boot and post-boot
actions follows upstream's ``rpc_interface.rs`` (PrebootApiController /
RuntimeApiController), so the same request fails with the same fault text.
"""

from __future__ import annotations

import enum

from petard.core import faults


class LifecyclePhase(enum.Enum):
    UNINITIALIZED = "Uninitialized"  # nothing configured yet
    NOT_STARTED = "NotStarted"  # something configured, InstanceStart not received
    STARTING = "Starting"  # InstanceStart is building and booting the machine
    RUNNING = "Running"
    PAUSED = "Paused"
    SHUTDOWN = "Shutdown"  # the guest or the VMM ended; the process is about to exit


class WireState(str, enum.Enum):
    """The ``state`` strings of ``GET /`` (upstream's InstanceInfo)."""

    NOT_STARTED = "Not started"
    RUNNING = "Running"
    PAUSED = "Paused"


WIRE_STATE = {
    LifecyclePhase.UNINITIALIZED: WireState.NOT_STARTED,
    LifecyclePhase.NOT_STARTED: WireState.NOT_STARTED,
    LifecyclePhase.STARTING: WireState.NOT_STARTED,
    LifecyclePhase.RUNNING: WireState.RUNNING,
    LifecyclePhase.PAUSED: WireState.PAUSED,
    LifecyclePhase.SHUTDOWN: WireState.NOT_STARTED,
}

PRE_BOOT = frozenset({LifecyclePhase.UNINITIALIZED, LifecyclePhase.NOT_STARTED})
POST_BOOT = frozenset({LifecyclePhase.RUNNING, LifecyclePhase.PAUSED})


class Action(enum.Enum):
    """Every operation the controller performs (upstream's ``VmmAction`` names)."""

    CONFIGURE_BOOT_SOURCE = "ConfigureBootSource"
    CONFIGURE_LOGGER = "ConfigureLogger"
    CONFIGURE_METRICS = "ConfigureMetrics"
    CONFIGURE_SERIAL = "ConfigureSerial"
    CREATE_SNAPSHOT = "CreateSnapshot"
    GET_BALLOON_CONFIG = "GetBalloonConfig"
    GET_BALLOON_STATS = "GetBalloonStats"
    GET_FULL_VM_CONFIG = "GetFullVmConfig"
    GET_MMDS = "GetMMDS"
    GET_VM_MACHINE_CONFIG = "GetVmMachineConfig"
    GET_VM_INSTANCE_INFO = "GetVmInstanceInfo"
    GET_VMM_VERSION = "GetVmmVersion"
    FLUSH_METRICS = "FlushMetrics"
    INSERT_BLOCK_DEVICE = "InsertBlockDevice"
    INSERT_PMEM_DEVICE = "InsertPmemDevice"
    UPDATE_PMEM_DEVICE = "UpdatePmemDevice"
    INSERT_NETWORK_DEVICE = "InsertNetworkDevice"
    LOAD_SNAPSHOT = "LoadSnapshot"
    PATCH_MMDS = "PatchMMDS"
    PAUSE = "Pause"
    PUT_MMDS = "PutMMDS"
    PUT_CPU_CONFIGURATION = "PutCpuConfiguration"
    RESUME = "Resume"
    SET_BALLOON_DEVICE = "SetBalloonDevice"
    SET_MMDS_CONFIGURATION = "SetMmdsConfiguration"
    SET_VSOCK_DEVICE = "SetVsockDevice"
    SET_ENTROPY_DEVICE = "SetEntropyDevice"
    GET_MEMORY_HOTPLUG_STATUS = "GetMemoryHotplugStatus"
    SET_MEMORY_HOTPLUG_DEVICE = "SetMemoryHotplugDevice"
    UPDATE_MEMORY_HOTPLUG_SIZE = "UpdateMemoryHotplugSize"
    START_MICRO_VM = "StartMicroVm"
    UPDATE_BALLOON = "UpdateBalloon"
    UPDATE_BALLOON_STATISTICS = "UpdateBalloonStatistics"
    START_FREE_PAGE_HINTING = "StartFreePageHinting"
    GET_FREE_PAGE_HINTING_STATUS = "GetFreePageHintingStatus"
    STOP_FREE_PAGE_HINTING = "StopFreePageHinting"
    UPDATE_BLOCK_DEVICE = "UpdateBlockDevice"
    UPDATE_NETWORK_INTERFACE = "UpdateNetworkInterface"
    UPDATE_MACHINE_CONFIGURATION = "UpdateMachineConfiguration"
    HOT_UNPLUG_DEVICE = "HotUnplugDevice"
    # petard's own namespace (/petard/...), not upstream's.
    PETARD_SET_DEVICE = "PetardSetDevice"
    PETARD_GET_DEVICES = "PetardGetDevices"
    PETARD_GET_PLUGINS = "PetardGetPlugins"


# Legal in every phase (upstream handles them in both controllers).
ALWAYS = frozenset({
    Action.GET_BALLOON_CONFIG,
    Action.GET_FULL_VM_CONFIG,
    Action.GET_MMDS,
    Action.GET_VM_MACHINE_CONFIG,
    Action.GET_VM_INSTANCE_INFO,
    Action.GET_VMM_VERSION,
    Action.PATCH_MMDS,
    Action.PUT_MMDS,
    Action.PETARD_GET_DEVICES,
    Action.PETARD_GET_PLUGINS,
})

PRE_BOOT_ONLY = frozenset({
    Action.CONFIGURE_BOOT_SOURCE,
    Action.CONFIGURE_LOGGER,
    Action.CONFIGURE_METRICS,
    Action.CONFIGURE_SERIAL,
    Action.LOAD_SNAPSHOT,
    Action.PUT_CPU_CONFIGURATION,
    Action.SET_BALLOON_DEVICE,
    Action.SET_VSOCK_DEVICE,
    Action.SET_MMDS_CONFIGURATION,
    Action.SET_ENTROPY_DEVICE,
    Action.SET_MEMORY_HOTPLUG_DEVICE,
    Action.START_MICRO_VM,
    Action.UPDATE_MACHINE_CONFIGURATION,
    Action.PETARD_SET_DEVICE,
})

# Device insertion is legal in both phases upstream: after boot it means PCI hotplug.
BOTH_PHASES = ALWAYS | frozenset({
    Action.INSERT_BLOCK_DEVICE,
    Action.INSERT_NETWORK_DEVICE,
    Action.INSERT_PMEM_DEVICE,
})

POST_BOOT_ONLY = frozenset(Action) - PRE_BOOT_ONLY - BOTH_PHASES


def check_allowed(phase: LifecyclePhase, action: Action) -> None:
    """Raise the upstream fault if ``action`` is not legal in ``phase``."""
    if action in BOTH_PHASES:
        return
    if phase in PRE_BOOT and action in POST_BOOT_ONLY:
        raise faults.VmmActionError(faults.OPERATION_NOT_SUPPORTED_PRE_BOOT)
    if phase in POST_BOOT and action in PRE_BOOT_ONLY:
        raise faults.VmmActionError(faults.OPERATION_NOT_SUPPORTED_POST_BOOT)
    if phase is LifecyclePhase.STARTING:
        raise faults.VmmActionError(faults.MICROVM_STARTING)
    if phase is LifecyclePhase.SHUTDOWN:
        raise faults.VmmActionError(faults.MICROVM_SHUT_DOWN)

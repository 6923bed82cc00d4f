"""The VMM's fault texts: what a failed action says, worded as upstream's ``VmmActionError``.

Firecracker builds each message from nested error types (``Boot source error: The kernel
file cannot be opened: No such file or directory (os error 2)``); clients and tests match
on them, so every text lives here once and call sites pick one.
"""

from __future__ import annotations

import errno
import os


class VmmActionError(Exception):
    """An action the controller refused or could not carry out; ``str()`` is the fault text.

    ``status`` is the HTTP status the API answers with (400, or 413 for MMDS over its limit).
    """

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def os_error(error: OSError) -> str:
    """Rust's ``io::Error`` Display: ``No such file or directory (os error 2)``."""
    code = error.errno if error.errno is not None else errno.EIO
    return f"{os.strerror(code)} (os error {code})"


OPERATION_NOT_SUPPORTED_PRE_BOOT = "The requested operation is not supported before starting the microVM."
OPERATION_NOT_SUPPORTED_POST_BOOT = "The requested operation is not supported after starting the microVM."
# No upstream counterpart (upstream's API thread blocks while the VM boots); petard answers.
MICROVM_STARTING = "The requested operation is not supported while the microVM is starting."
MICROVM_SHUT_DOWN = "The requested operation is not supported after the microVM has shut down."

# Boot source
def kernel_file_error(error: OSError) -> str:
    return f"Boot source error: The kernel file cannot be opened: {os_error(error)}"


def initrd_file_error(error: OSError) -> str:
    return (
        "Boot source error: The initrd file cannot be opened due to invalid path or "
        f"invalid permissions. {os_error(error)}"
    )


def kernel_cmdline_error(reason: str) -> str:
    return f"Boot source error: The kernel command line is invalid: {reason}"


# Machine config
MAX_SUPPORTED_VCPUS = 32
INVALID_VCPU_COUNT = (
    "Machine config error: The number of vCPUs must be greater than 0, less than "
    f"{MAX_SUPPORTED_VCPUS} and must be 1 or an even number if SMT is enabled."
)
INVALID_MEMORY_SIZE = "Machine config error: The memory size (MiB) is either 0, or not a multiple of the configured page size."
SMT_NOT_SUPPORTED = "Machine config error: Enabling simultaneous multithreading is not supported on aarch64."
INCOMPATIBLE_BALLOON_SIZE = "Machine config error: The memory size (MiB) is smaller than the previously set balloon device target size."

# Drives
ROOT_BLOCK_DEVICE_ALREADY_ADDED = "Drive config error: A root block device already exists!"
BLOCK_ROOT_CONFLICTS_WITH_PMEM = (
    "Drive config error: Attempt to add block as a root device while the root device "
    "defined as a pmem device"
)


def drive_file_error(error: OSError) -> str:
    return f"Drive config error: Unable to create the virtio block device: {_backing_file(error)}"


def drive_update_error(error: OSError, path: str) -> str:
    return (
        "Drive config error: Unable to patch the block device: "
        f"Error manipulating the backing file: {os_error(error)} {path} Please verify the request arguments."
    )


def _backing_file(error: OSError) -> str:
    return f"Virtio backend error: Error manipulating the backing file: {os_error(error)} {error.filename}"


DRIVE_UPDATE_NEEDS_BACKEND = "Drive config error: Unable to patch the block device: Running method expected different backend. Please verify the request arguments."

# Pmem
PMEM_ROOT_CONFLICTS_WITH_BLOCK = (
    "Pmem config error: Attempt to add pmem as a root device while the root device "
    "defined as a block device"
)
ROOT_PMEM_ALREADY_EXISTS = "Pmem config error: A root pmem device already exist"


def pmem_file_error(error: OSError) -> str:
    return f"Pmem config error: Error accessing underlying file: {os_error(error)}"


# Network
def mac_in_use(mac: str) -> str:
    return f"Network config error: The MAC address is already in use: {mac}"


# MMDS
MMDS_EMPTY_IFACE_LIST = "MMMDS config error: The list of network interface IDs that allow forwarding MMDS requests is empty."
MMDS_INVALID_IFACE = (
    "MMMDS config error: The list of network interface IDs provided contains at least one ID "
    "that does not correspond to any existing network interface."
)
MMDS_INVALID_IPV4 = "MMMDS config error: The MMDS IPv4 address is not link local."
MMDS_NOT_INITIALIZED = "MMDS error: The MMDS data store is not initialized."
MMDS_LIMIT_EXCEEDED = "MMDS limit exceeded error: The MMDS patch request doesn't fit."
# Upstream stores any JSON value; its spec (and GET /mmds) promise an object, so petard keeps to that.
MMDS_NOT_AN_OBJECT = "MMDS error: The MMDS contents must be a JSON object."

# Memory hotplug (virtio-mem), checked as upstream's `MemoryHotplugConfig::validate`.
MEMORY_HOTPLUG_MIN_BLOCK_MIB = 2
MEMORY_HOTPLUG_MIN_SLOT_MIB = 128


def memory_hotplug_config_error(total_mib: int, block_mib: int, slot_mib: int) -> str | None:
    """Upstream's refusal of a memory hotplug configuration, or None when it is valid."""
    if block_mib < MEMORY_HOTPLUG_MIN_BLOCK_MIB:
        problem = f"Block size must not be lower than {MEMORY_HOTPLUG_MIN_BLOCK_MIB} MiB"
    elif block_mib & (block_mib - 1):
        problem = "Block size must be a power of 2"
    elif slot_mib < MEMORY_HOTPLUG_MIN_SLOT_MIB:
        problem = f"Slot size must not be lower than {MEMORY_HOTPLUG_MIN_SLOT_MIB} MiB"
    elif slot_mib % block_mib:
        problem = f"Slot size must be a multiple of block size ({block_mib} MiB)"
    elif total_mib < slot_mib:
        problem = f"Total size must not be lower than slot size ({slot_mib} MiB)"
    elif total_mib % slot_mib:
        problem = f"Total size must be a multiple of slot size ({slot_mib} MiB)"
    else:
        return None
    return f"Memory hotplug config error: {problem}"


# Balloon
BALLOON_NOT_FOUND = "Balloon config error: No balloon device found."
BALLOON_TOO_MANY_PAGES = "Balloon config error: Amount of pages requested is too large."
# After boot, upstream wraps the device's own errors (`VmmError::Balloon`, or the device
# manager's "not found") in "Balloon update error: " for changes and "Internal VMM error: " for
# reads.
BALLOON_UPDATE_ERROR = "Balloon update error: "
INTERNAL_VMM_ERROR = "Internal VMM error: "
DEVICE_NOT_FOUND_ON_ACTION = "Failed perform action on device: Device not found"


def balloon_device_error(text: str) -> str:
    return f"Balloon: {text}"

# Metrics / logger
METRICS_ALREADY_INITIALIZED = (
    "Metrics error: Cannot initialize the metrics system due to bad user input: "
    "Reinitialization of metrics not allowed."
)


def metrics_open_error(error: OSError) -> str:
    return (
        "Metrics error: Cannot initialize the metrics system due to bad user input: "
        f"{os_error(error)}"
    )


def logger_open_error(error: OSError) -> str:
    return f"Logger error: Failed to open target file: {os_error(error)}"


# Snapshots
LOAD_SNAPSHOT_NOT_ALLOWED = (
    "Load snapshot error: Loading a microVM snapshot not allowed after configuring "
    "boot-specific resources."
)

# Start
MISSING_KERNEL_CONFIG = "Start microvm error: Cannot start microvm without kernel configuration."
PCI_NOT_ENABLED = "PCI is not enabled"
DEVICE_NOT_FOUND = "Device not found"


def start_error(reason: str) -> str:
    return f"Start microvm error: {reason}"


def not_implemented(what: str) -> str:
    """A configured feature petard does not provide yet: the start fails naming it."""
    return f"The requested operation is not supported: {what} is not implemented by petard yet"

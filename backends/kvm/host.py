"""Whether this host can run aarch64 guests on KVM, and a clear reason when it cannot."""

from __future__ import annotations

import os
import platform

from petard.core.backend import BackendUnavailableError

KVM_DEVICE = "/dev/kvm"
AARCH64_MACHINES = ("aarch64", "arm64")


class KvmUnavailableError(BackendUnavailableError):
    """KVM for aarch64 guests is not usable here; ``str()`` says why and what to do instead."""


def check_host(device: str = KVM_DEVICE) -> None:
    machine = platform.machine()
    hint = "Run petard with --backend unicorn to emulate the vCPUs instead."
    if machine not in AARCH64_MACHINES:
        raise KvmUnavailableError(
            f"KVM for aarch64 guests is not available on this {machine} host "
            f"({device} can only run guests of the host's own architecture). {hint}"
        )
    if not os.path.exists(device):
        raise KvmUnavailableError(f"KVM is not available: {device} does not exist. {hint}")
    if not os.access(device, os.R_OK | os.W_OK):
        raise KvmUnavailableError(f"KVM is not available: no read/write access to {device}. {hint}")

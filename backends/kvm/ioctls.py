"""Thin typed wrappers around the KVM file descriptors: /dev/kvm, a VM, a vCPU, a device.

Each method is one ioctl from `kvm_abi`, with Python ints in and out and `OSError` (errno
intact) on failure; policy (which vGIC, which registers, thread model) lives elsewhere.
Pointers the kernel reads or writes (ONE_REG values, device attributes) are ctypes u64s
kept alive for the duration of the call.
"""

from __future__ import annotations

import ctypes
import fcntl
import mmap
import os
import signal

from . import kvm_abi as abi


def _close(fd: int) -> int:
    """Close `fd` once; returns -1 for the caller to store (a second close must not hit a
    number the process has reused meanwhile)."""
    if fd >= 0:
        try:
            os.close(fd)
        except OSError:
            pass
    return -1


class KvmDeviceFd:
    """A device created with KVM_CREATE_DEVICE (the in-kernel vGIC)."""

    def __init__(self, fd: int, device_type: int):
        self.fd = fd
        self.device_type = device_type

    def set_attr(self, group: int, attr: int, value: int | None = None) -> None:
        """KVM_SET_DEVICE_ATTR; `value` (a u64) is passed by address, None passes NULL."""
        cell = ctypes.c_uint64(value or 0)
        address = ctypes.addressof(cell) if value is not None else 0
        fcntl.ioctl(self.fd, abi.KVM_SET_DEVICE_ATTR, abi.kvm_device_attr.pack(0, group, attr, address))

    def get_attr(self, group: int, attr: int) -> int:
        cell = ctypes.c_uint64(0)
        fcntl.ioctl(self.fd, abi.KVM_GET_DEVICE_ATTR,
                    abi.kvm_device_attr.pack(0, group, attr, ctypes.addressof(cell)))
        return cell.value

    def has_attr(self, group: int, attr: int) -> bool:
        try:
            fcntl.ioctl(self.fd, abi.KVM_HAS_DEVICE_ATTR, abi.kvm_device_attr.pack(0, group, attr, 0))
        except OSError:
            return False
        return True

    def close(self) -> None:
        self.fd = _close(self.fd)


class KvmVcpuFd:
    """One vCPU: its fd and its mmap'ed `struct kvm_run`."""

    def __init__(self, fd: int, index: int, mmap_size: int):
        self.fd = fd
        self.index = index
        self.run = mmap.mmap(fd, mmap_size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)

    def init(self, target: int, features: int) -> None:
        """KVM_ARM_VCPU_INIT with `features` as the bit set of features[0]."""
        words = [features] + [0] * (abi.KVM_VCPU_INIT_FEATURE_WORDS - 1)
        fcntl.ioctl(self.fd, abi.KVM_ARM_VCPU_INIT, abi.kvm_vcpu_init.pack(target, *words))

    def get_one_reg(self, reg_id: int) -> int:
        """KVM_GET_ONE_REG of a register of any width the id says (32, 64, 128 bits)."""
        size = abi.register_size(reg_id)
        cell = (ctypes.c_ubyte * size)()
        fcntl.ioctl(self.fd, abi.KVM_GET_ONE_REG, abi.kvm_one_reg.pack(reg_id, ctypes.addressof(cell)))
        return int.from_bytes(bytes(cell), "little")

    def set_one_reg(self, reg_id: int, value: int) -> None:
        size = abi.register_size(reg_id)
        cell = (ctypes.c_ubyte * size).from_buffer_copy(value.to_bytes(size, "little"))
        fcntl.ioctl(self.fd, abi.KVM_SET_ONE_REG, abi.kvm_one_reg.pack(reg_id, ctypes.addressof(cell)))

    def get_mp_state(self) -> int:
        buffer = bytearray(abi.kvm_mp_state.size)
        fcntl.ioctl(self.fd, abi.KVM_GET_MP_STATE, buffer, True)
        return abi.kvm_mp_state.unpack(buffer)[0]

    def set_mp_state(self, state: int) -> None:
        fcntl.ioctl(self.fd, abi.KVM_SET_MP_STATE, abi.kvm_mp_state.pack(state))

    def set_signal_mask(self, blocked: set[int]) -> None:
        """KVM_SET_SIGNAL_MASK: the signals blocked *while the guest runs*."""
        mask = 0
        for signum in blocked:
            mask |= 1 << (int(signum) - 1)
        payload = abi.kvm_signal_mask.pack(abi.KERNEL_SIGSET_BYTES) + mask.to_bytes(abi.KERNEL_SIGSET_BYTES, "little")
        fcntl.ioctl(self.fd, abi.KVM_SET_SIGNAL_MASK, payload)

    def run_once(self) -> int:
        """KVM_RUN, then the exit_reason (OSError EINTR when kicked or immediate_exit)."""
        fcntl.ioctl(self.fd, abi.KVM_RUN, 0)
        return abi.kvm_run_exit_reason.unpack_from(self.run, abi.KVM_RUN_EXIT_REASON_OFFSET)[0]

    def set_immediate_exit(self, value: bool) -> None:
        self.run[abi.KVM_RUN_IMMEDIATE_EXIT_OFFSET] = 1 if value else 0

    def close(self) -> None:
        try:
            self.run.close()
        except (BufferError, ValueError):
            pass
        self.fd = _close(self.fd)


class KvmVmFd:
    """A VM: memory slots, vCPUs, devices and interrupt lines."""

    def __init__(self, fd: int, system: KvmSystem):
        self.fd = fd
        self.system = system

    def check_extension(self, capability: int) -> int:
        return fcntl.ioctl(self.fd, abi.KVM_CHECK_EXTENSION, capability)

    def set_user_memory_region(self, slot: int, guest_phys_addr: int, memory_size: int,
                               userspace_addr: int, flags: int = 0) -> None:
        fcntl.ioctl(self.fd, abi.KVM_SET_USER_MEMORY_REGION, abi.kvm_userspace_memory_region.pack(
            slot, flags, guest_phys_addr, memory_size, userspace_addr))

    def create_vcpu(self, index: int) -> KvmVcpuFd:
        fd = fcntl.ioctl(self.fd, abi.KVM_CREATE_VCPU, index)
        try:
            return KvmVcpuFd(fd, index, self.system.vcpu_mmap_size())
        except Exception:
            _close(fd)
            raise

    def preferred_target(self) -> int:
        buffer = bytearray(abi.kvm_vcpu_init.size)
        fcntl.ioctl(self.fd, abi.KVM_ARM_PREFERRED_TARGET, buffer, True)
        return abi.kvm_vcpu_init.unpack(buffer)[0]

    def create_device(self, device_type: int, test: bool = False) -> KvmDeviceFd | None:
        """KVM_CREATE_DEVICE; with `test` only asks whether the type is supported (None)."""
        flags = abi.KVM_CREATE_DEVICE_TEST if test else 0
        buffer = bytearray(abi.kvm_create_device.pack(device_type, 0, flags))
        fcntl.ioctl(self.fd, abi.KVM_CREATE_DEVICE, buffer, True)
        if test:
            return None
        return KvmDeviceFd(abi.kvm_create_device.unpack(buffer)[1], device_type)

    def irq_line(self, irq: int, level: bool) -> None:
        fcntl.ioctl(self.fd, abi.KVM_IRQ_LINE, abi.kvm_irq_level.pack(irq, 1 if level else 0))

    def close(self) -> None:
        self.fd = _close(self.fd)


class KvmSystem:
    """/dev/kvm itself."""

    def __init__(self, path: str = "/dev/kvm"):
        self.path = path
        self.fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        self._mmap_size: int | None = None

    def api_version(self) -> int:
        return fcntl.ioctl(self.fd, abi.KVM_GET_API_VERSION, 0)

    def check_extension(self, capability: int) -> int:
        return fcntl.ioctl(self.fd, abi.KVM_CHECK_EXTENSION, capability)

    def vcpu_mmap_size(self) -> int:
        if self._mmap_size is None:
            self._mmap_size = fcntl.ioctl(self.fd, abi.KVM_GET_VCPU_MMAP_SIZE, 0)
        return self._mmap_size

    def create_vm(self, ipa_bits: int = 0) -> KvmVmFd:
        """KVM_CREATE_VM; machine type 0 is the default 40-bit IPA space."""
        return KvmVmFd(fcntl.ioctl(self.fd, abi.KVM_CREATE_VM, ipa_bits), self)

    def close(self) -> None:
        self.fd = _close(self.fd)


def thread_blocked_signals() -> set[int]:
    """The calling thread's current signal mask."""
    return set(signal.pthread_sigmask(signal.SIG_BLOCK, []))

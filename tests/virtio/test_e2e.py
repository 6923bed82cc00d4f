"""End to end on the Unicorn backend (and KVM where available), through the Firecracker API of a real petard process:
the Debian kernel boots with its root file system on a virtio-blk drive (init comes from
the drive), writes a file that the host then reads out of the image with debugfs, sees a
second drive as /dev/vdb, cannot write to a read-only drive, reads /dev/hwrng; after the
guest's sync a kill -9 loses nothing; PATCH /drives swaps a backing file under the guest.

Boots are slow (seconds each on a shared host): the two tests boot once each.
"""

from __future__ import annotations

import hashlib
import os
import platform
import re
import shutil
import subprocess

import pytest

from petard.guest import TEST_POWEROFF_ARG
from petard.guest.rootfs import build_rootfs_image, rootfs_artifacts
from petard.guest.rootfs_scripts import ROOTFS_READY_MARKER, RUN_HOOK

from .petard_vm import PetardVm

pytestmark = pytest.mark.skipif(shutil.which("debugfs") is None, reason="needs e2fsprogs (debugfs)")

BOOT_ARGS = "console=ttyS0 reboot=k panic=1"
DATA_MARKER = b"PETARD-DATA-DRIVE-"


BACKENDS = ["unicorn"] + (["kvm"] if platform.machine() == "aarch64" and os.access("/dev/kvm", os.W_OK) else [])


@pytest.fixture(params=BACKENDS)
def backend(request):
    """Unicorn everywhere; KVM too on an aarch64 host with /dev/kvm (the emulated-host suite)."""
    return request.param


@pytest.fixture(scope="module")
def guest():
    return rootfs_artifacts()


def debugfs_cat(image, path) -> bytes:
    result = subprocess.run(["debugfs", "-R", f"cat {path}", str(image)], capture_output=True, check=True)
    return result.stdout


def configure(vm: PetardVm, guest, root_image, boot_args, mem_mib=256):
    vm.put("/machine-config", {"vcpu_count": 1, "mem_size_mib": mem_mib})
    vm.put("/boot-source", {"kernel_image_path": str(guest.kernel), "initrd_path": str(guest.initrd),
                            "boot_args": boot_args})
    vm.put("/serial", {"serial_out_path": str(vm.serial)})
    vm.put("/drives/rootfs", {"drive_id": "rootfs", "path_on_host": str(root_image), "is_root_device": True,
                              "is_read_only": False, "cache_type": "Writeback"})


FUNCTIONAL_RUN = """#!/bin/sh
echo "ROOT-MOUNT: $(grep ' / ' /proc/mounts)"
echo "written by the guest" > /guest-file
sync
echo "VDB: $(dd if=/dev/vdb bs=21 count=1 2>/dev/null)"
if dd if=/dev/zero of=/dev/vdc bs=512 count=1 conv=fsync 2>/dev/null; then echo "VDC-RAW-WRITE: accepted"; else echo "VDC-RAW-WRITE: rejected"; fi
mount -t ext4 /dev/vdc /mnt 2>/dev/null
if touch /mnt/new-file 2>/dev/null; then echo "VDC-FS-WRITE: accepted"; else echo "VDC-FS-WRITE: rejected"; fi
echo "HWRNG-CURRENT: $(cat /sys/class/misc/hw_random/rng_current)"
echo "HWRNG: $(dd if=/dev/hwrng bs=32 count=1 2>/dev/null | od -An -tx1 | tr -d ' \\n')"
echo RUN-DONE
"""


def test_rootfs_drive_second_drive_read_only_drive_and_hwrng(guest, backend, tmp_path):
    root = build_rootfs_image(guest.busybox, tmp_path / "root.ext4", 32, {RUN_HOOK: FUNCTIONAL_RUN})
    data = tmp_path / "data.img"
    data.write_bytes((DATA_MARKER + b"vdb").ljust(1 << 20, b"\0"))
    read_only = build_rootfs_image(guest.busybox, tmp_path / "ro.ext4", 8)
    read_only_digest = hashlib.sha256(read_only.read_bytes()).hexdigest()

    vm = PetardVm(tmp_path, backend)
    try:
        configure(vm, guest, root, f"{BOOT_ARGS} {TEST_POWEROFF_ARG}")
        vm.put("/drives/data", {"drive_id": "data", "path_on_host": str(data), "is_root_device": False})
        vm.put("/drives/ro", {"drive_id": "ro", "path_on_host": str(read_only), "is_root_device": False,
                              "is_read_only": True})
        vm.put("/entropy", {})
        vm.put("/actions", {"action_type": "InstanceStart"})
        assert vm.wait_exit() == 0, vm.output()[-3000:]
    finally:
        vm.kill()
    console = vm.console()
    assert ROOTFS_READY_MARKER in console and "RUN-DONE" in console, console[-4000:]
    assert "ROOT-MOUNT: /dev/vda / ext4 rw" in console
    assert f"VDB: {(DATA_MARKER + b'vdb').decode()}" in console
    assert "VDC-RAW-WRITE: rejected" in console
    assert "VDC-FS-WRITE: rejected" in console
    assert "HWRNG-CURRENT: virtio_rng" in console  # virtio_rng.0
    random_hex = re.search(r"HWRNG: ([0-9a-f]*)", console).group(1)
    assert len(random_hex) == 64 and random_hex != "0" * 64
    assert debugfs_cat(root, "/guest-file") == b"written by the guest\n"
    assert hashlib.sha256(read_only.read_bytes()).hexdigest() == read_only_digest
    assert "device needs reset" not in vm.output()


DURABILITY_RUN = """#!/bin/sh
dd if=/dev/urandom of=/durable bs=4096 count=64 2>/dev/null
echo "DURABLE: $(md5sum /durable)"
old=$(cat /sys/block/vdb/size)
sync
echo SYNCED
while [ "$(cat /sys/block/vdb/size)" = "$old" ]; do sleep 0.2; done
echo "PATCHED: $(cat /sys/block/vdb/size) $(dd if=/dev/vdb bs=21 count=1 2>/dev/null)"
sleep 3600
"""


def test_synced_data_survives_kill_9_and_patch_swaps_the_drive(guest, backend, tmp_path):
    root = build_rootfs_image(guest.busybox, tmp_path / "root.ext4", 32, {RUN_HOOK: DURABILITY_RUN})
    first = tmp_path / "first.img"
    first.write_bytes((DATA_MARKER + b"one").ljust(1 << 20, b"\0"))
    second = tmp_path / "second.img"
    second.write_bytes((DATA_MARKER + b"two").ljust(2 << 20, b"\0"))

    vm = PetardVm(tmp_path, backend)
    try:
        configure(vm, guest, root, BOOT_ARGS)
        vm.put("/drives/data", {"drive_id": "data", "path_on_host": str(first), "is_root_device": False})
        vm.put("/actions", {"action_type": "InstanceStart"})
        console = vm.wait_console("SYNCED")
        digest = re.search(r"DURABLE: ([0-9a-f]{32})", console).group(1)

        status, reply = vm.patch("/drives/data", {"drive_id": "data"})
        assert status == 400 and "Running method expected different backend" in reply["fault_message"]
        status, reply = vm.patch("/drives/nosuch", {"drive_id": "nosuch", "path_on_host": str(second)})
        assert status == 400
        status, reply = vm.patch("/drives/data", {"drive_id": "data", "path_on_host": str(tmp_path / "missing")})
        assert status == 400 and "No such file or directory" in reply["fault_message"]
        status, reply = vm.patch("/drives/data", {"drive_id": "data", "path_on_host": str(second),
                                                  "rate_limiter": {"ops": {"size": 1000, "refill_time": 100}}})
        assert status == 204, reply
        console = vm.wait_console("PATCHED:")
        assert f"PATCHED: {2 * 2048} {(DATA_MARKER + b'two').decode()}" in console
        status, config = vm.request("GET", "/vm/config")
        [data_drive] = [d for d in config["drives"] if d["drive_id"] == "data"]
        assert data_drive["path_on_host"] == str(second)
        assert data_drive["rate_limiter"]["ops"]["size"] == 1000
    finally:
        vm.kill()  # SIGKILL: no flush, no clean shutdown
    assert vm.process.returncode == -9
    durable = debugfs_cat(root, "/durable")
    assert len(durable) == 64 * 4096
    assert hashlib.md5(durable).hexdigest() == digest

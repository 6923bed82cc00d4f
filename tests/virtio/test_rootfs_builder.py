"""The root-file-system guest tooling: module dependency order from real Debian .ko files,
the module initramfs (read back with GNU cpio) and ext4 images made by mkfs.ext4 (read back
with debugfs)."""

from __future__ import annotations

import gzip
import shutil
import subprocess

import pytest

from petard.guest import kmod
from petard.guest.rootfs import GUEST_MODULES, build_rootfs_image, rootfs_artifacts
from petard.guest.rootfs_scripts import LOAD_ORDER_FILE, ROOTFS_INIT, STAGE1_INIT

pytestmark = pytest.mark.skipif(shutil.which("debugfs") is None, reason="needs e2fsprogs")


@pytest.fixture(scope="module")
def guest():
    return rootfs_artifacts()


def debugfs(image, command) -> str:
    return subprocess.run(["debugfs", "-R", command, str(image)], capture_output=True, text=True,
                          check=True).stdout


def test_modinfo_of_a_real_module(guest):
    [ext4] = [p for p in guest.rootfs.parent.parent.glob("modules/*/lib/modules/*/kernel/fs/ext4/ext4.ko")]
    info = kmod.modinfo(ext4.read_bytes())
    assert info["name"] == ["ext4"]
    assert set(info["depends"][0].split(",")) == {"jbd2", "mbcache", "crc16"}


def test_modinfo_rejects_non_elf():
    with pytest.raises(kmod.ModuleError):
        kmod.modinfo(b"not an ELF file" * 10)


def test_initramfs_loads_dependencies_first(guest, tmp_path):
    archive = gzip.decompress(guest.initrd.read_bytes())
    listing = subprocess.run(["cpio", "-t"], input=archive, capture_output=True, check=True).stdout.decode().split()
    assert "init" in listing and LOAD_ORDER_FILE in listing
    subprocess.run(["cpio", "-id", "--quiet", LOAD_ORDER_FILE, "init"], input=archive, cwd=tmp_path, check=True)
    order = (tmp_path / LOAD_ORDER_FILE).read_text().split()
    assert (tmp_path / "init").read_text() == STAGE1_INIT
    for module in order:
        assert f"lib/modules/{module}" in listing
    position = {name.removesuffix(".ko").replace("-", "_"): i for i, name in enumerate(order)}
    assert set(GUEST_MODULES) <= set(position)
    assert position["jbd2"] < position["ext4"] and position["mbcache"] < position["ext4"]
    assert position["crc16"] < position["ext4"] and position["crc32c_generic"] < position["ext4"]


def test_rootfs_image_holds_busybox_and_init(guest):
    assert debugfs(guest.rootfs, "cat /sbin/init") == ROOTFS_INIT
    stat = debugfs(guest.rootfs, "stat /bin/busybox")
    assert "Mode:  0755" in stat
    assert guest.busybox.stat().st_size == int(stat.split("Size: ")[1].split()[0])


def test_extra_files_and_size(guest, tmp_path):
    image = build_rootfs_image(guest.busybox, tmp_path / "x.ext4", 16, {"etc/petard/run": "#!/bin/sh\necho hi\n",
                                                                     "etc/motd": "hello\n"})
    assert image.stat().st_size == 16 << 20
    assert debugfs(image, "cat /etc/motd") == "hello\n"
    assert "Mode:  0755" in debugfs(image, "stat /etc/petard/run")
    assert "Mode:  0644" in debugfs(image, "stat /etc/motd")

"""The busybox initramfs image: layout, /init, reproducibility (with a stand-in busybox)."""

from __future__ import annotations

import gzip
import stat

import pytest

from petard.guest import cpio
from petard.guest.init_script import INIT_SCRIPT, READY_MARKER, TEST_POWEROFF_ARG
from petard.guest.initramfs import Initramfs, busybox_initramfs, write_busybox_initramfs

from .test_cpio import cpio_list

FAKE_BUSYBOX = b"\x7fELF" + bytes(1000)


def members(image_bytes: bytes) -> dict[str, cpio.CpioEntry]:
    return {entry.name: entry for entry in cpio.read_newc(gzip.decompress(image_bytes))}


def test_base_image_contents():
    built = busybox_initramfs(FAKE_BUSYBOX).build()
    found = members(built)
    assert found["init"].data == INIT_SCRIPT.encode()
    assert found["init"].mode == stat.S_IFREG | 0o755
    assert found["bin/busybox"].data == FAKE_BUSYBOX and found["bin/busybox"].mode & 0o111
    assert found["dev/console"].is_char_device and (found["dev/console"].rdev_major, found["dev/console"].rdev_minor) == (5, 1)
    assert found["tmp"].mode == stat.S_IFDIR | 0o1777
    for mount_point in ("proc", "sys", "dev"):
        assert found[mount_point].is_dir
    listed = cpio_list(gzip.decompress(built))
    assert "init" in listed and "bin/busybox" in listed


def test_init_script_behaviour_is_spelled_out():
    assert INIT_SCRIPT.startswith("#!/bin/busybox sh\n")
    assert f"echo {READY_MARKER}" in INIT_SCRIPT
    assert TEST_POWEROFF_ARG in INIT_SCRIPT and "poweroff -f" in INIT_SCRIPT
    assert "mount -t devtmpfs" in INIT_SCRIPT and "cttyhack sh" in INIT_SCRIPT


def test_build_is_reproducible_and_written_atomically(tmp_path):
    (tmp_path / "busybox").write_bytes(FAKE_BUSYBOX)
    size = write_busybox_initramfs(tmp_path / "busybox", tmp_path / "initrd.gz")
    data = (tmp_path / "initrd.gz").read_bytes()
    assert size == len(data) and data == busybox_initramfs(FAKE_BUSYBOX).build()
    assert not (tmp_path / "initrd.gz.tmp").exists()


def test_extra_layers_add_parents_and_refuse_clobbering():
    image = busybox_initramfs(FAKE_BUSYBOX, extra_entries=[cpio.regular_file("lib/modules/6.1/virtio_mmio.ko", b"ko")])
    names = image.names()
    assert names.index("lib") < names.index("lib/modules") < names.index("lib/modules/6.1/virtio_mmio.ko")
    with pytest.raises(cpio.CpioError, match="already"):
        image.add_file("init", b"other")
    empty = Initramfs()
    empty.add_symlink("sbin/init", "/bin/busybox")
    assert empty.names() == ["sbin", "sbin/init"]

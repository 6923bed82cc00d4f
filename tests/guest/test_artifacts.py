"""The fetched guest artifacts are what the boot path needs (real Debian packages)."""

from __future__ import annotations

import gzip
import struct
import time

from petard.core.boot.kernel import IMAGE_MAGIC, ImageHeader
from petard.guest import artifacts, cached_artifacts, cpio
from petard.guest.init_script import INIT_SCRIPT

EM_AARCH64 = 183


def test_kernel_is_an_arm64_image_from_the_metapackage(guest_artifacts):
    data = guest_artifacts.kernel.read_bytes()
    header = ImageHeader.parse(data)  # raises if not an arm64 Image
    assert struct.unpack_from("<I", data, 0x38)[0] == IMAGE_MAGIC
    assert header.image_size >= len(data) > 10_000_000
    assert guest_artifacts.kernel.name == f"vmlinuz-{guest_artifacts.kernel_release}"
    assert guest_artifacts.kernel_package == f"linux-image-{guest_artifacts.kernel_release}"


def test_kernel_config_has_what_a_firecracker_style_guest_needs(guest_artifacts):
    config = set(guest_artifacts.kernel_config.read_text().splitlines())
    for option in ("CONFIG_BLK_DEV_INITRD=y", "CONFIG_RD_GZIP=y", "CONFIG_DEVTMPFS=y", "CONFIG_SERIAL_OF_PLATFORM=y",
                   "CONFIG_SERIAL_8250_CONSOLE=y", "CONFIG_RTC_DRV_PL031=y", "CONFIG_ARM_PSCI_FW=y"):  # fmt: skip
        assert option in config


def test_initrd_holds_init_and_a_static_arm64_busybox(guest_artifacts):
    archive = gzip.decompress(guest_artifacts.initrd.read_bytes())
    found = {entry.name: entry for entry in cpio.read_newc(archive)}
    assert found["init"].data == INIT_SCRIPT.encode()
    busybox = found["bin/busybox"].data
    assert busybox == guest_artifacts.busybox.read_bytes()
    assert busybox[:4] == b"\x7fELF" and struct.unpack_from("<H", busybox, 18)[0] == EM_AARCH64
    assert b"ld-linux" not in busybox[:4096]  # no program interpreter: static
    assert len(guest_artifacts.initrd.read_bytes()) < 2_000_000


def test_second_call_is_instant_and_offline(guest_artifacts, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("apt was used although everything is cached")

    monkeypatch.setattr("petard.guest.apt.PrivateApt.ensure_lists", no_network)
    start = time.perf_counter()
    again = artifacts()
    assert time.perf_counter() - start < 0.5
    assert again == guest_artifacts == cached_artifacts()

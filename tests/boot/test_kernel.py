"""Loading arm64 kernels: Debian's real one, synthetic ones, and files that must be refused."""

from __future__ import annotations

import gzip
import hashlib
import struct

import pytest

from petard.core import layout
from petard.core.boot.kernel import KernelImageError, LoadedKernel, load_kernel

from .images import arm64_image, efi_zboot, gzipped


def _write(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_debian_kernel_is_copied_verbatim_to_the_firecracker_address(guest_artifacts, make_memory):
    memory = make_memory(128)
    kernel_bytes = guest_artifacts.kernel.read_bytes()
    loaded = load_kernel(memory, guest_artifacts.kernel)
    assert loaded.entry == loaded.load_address == 0x8020_0000  # Debian's text_offset is 0
    assert loaded.file_size == len(kernel_bytes)
    assert not loaded.compressed
    assert loaded.header.image_size >= len(kernel_bytes)  # BSS comes after the file
    assert loaded.end == 0x8020_0000 + loaded.header.image_size
    assert memory.read(loaded.load_address, 64) == kernel_bytes[:64]
    in_guest = hashlib.sha256(memory.read(loaded.load_address, loaded.file_size)).digest()
    assert in_guest == hashlib.sha256(kernel_bytes).digest()
    assert memory.read(loaded.load_address + loaded.file_size, 16) == bytes(16)


def test_gzip_compressed_debian_kernel_loads_to_the_same_bytes(guest_artifacts, make_memory, tmp_path):
    raw = guest_artifacts.kernel.read_bytes()
    compressed = _write(tmp_path, "Image.gz", gzipped(raw))
    memory = make_memory(128)
    loaded = load_kernel(memory, compressed)
    assert loaded.compressed
    assert (loaded.load_address, loaded.file_size) == (0x8020_0000, len(raw))
    assert hashlib.sha256(memory.read(loaded.load_address, len(raw))).digest() == hashlib.sha256(raw).digest()


def test_text_offset_from_the_header_is_honoured(make_memory, tmp_path):
    image = arm64_image(text_offset=0x8_0000)
    loaded = load_kernel(make_memory(16), _write(tmp_path, "Image", image))
    assert loaded.load_address == 0x8028_0000


def test_image_size_zero_means_legacy_text_offset(make_memory, tmp_path):
    image = arm64_image(text_offset=0, image_size=0)
    memory = make_memory(16)
    loaded = load_kernel(memory, _write(tmp_path, "Image", image))
    assert loaded.load_address == 0x8028_0000
    assert memory.read(0x8028_0000, len(image)) == image


def test_efi_zboot_with_gzip_payload_is_unwrapped(make_memory, tmp_path):
    image = arm64_image(body=bytes(range(256)) * 64)
    memory = make_memory(16)
    loaded = load_kernel(memory, _write(tmp_path, "vmlinuz.efi", efi_zboot(gzipped(image))))
    assert loaded.compressed and loaded.file_size == len(image)
    assert memory.read(loaded.load_address, len(image)) == image


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "too short"),
        (b"\x00" * 63, "too short"),
        (b"\x7fELF\x02\x01\x01" + b"\0" * 100, "ELF file"),
        (b"\x28\xb5\x2f\xfd" + b"\0" * 100, "zstd-compressed"),
        (b"\xfd7zXZ\x00" + b"\0" * 100, "xz-compressed"),
        (b"\0" * 0x202 + b"HdrS" + b"\0" * 100, "x86 bzImage"),
        (b"MZ" + b"\0" * 200, "PE/EFI executable without"),
        (bytes(range(256)), "no 'ARM\\\\x64' magic"),
        (efi_zboot(b"\x28\xb5\x2f\xfd", b"zstd"), "zboot image compressed with 'zstd'"),
    ],
)
def test_files_that_are_not_arm64_images_are_refused(make_memory, tmp_path, data, message):
    with pytest.raises(KernelImageError, match=message):
        load_kernel(make_memory(16), _write(tmp_path, "kernel", data))


def test_gzip_of_something_else_is_refused(make_memory, tmp_path):
    with pytest.raises(KernelImageError, match=r"\(decompressed\): not an arm64 Image: an ELF file"):
        load_kernel(make_memory(16), _write(tmp_path, "k.gz", gzipped(b"\x7fELF" + b"\0" * 4096)))


def test_truncated_and_corrupt_gzip_are_refused(make_memory, tmp_path):
    good = gzipped(arm64_image(body=bytes(range(256)) * 256))
    with pytest.raises(KernelImageError, match="truncated"):
        load_kernel(make_memory(16), _write(tmp_path, "short.gz", good[: len(good) // 2]))
    corrupt = good[:20] + bytes(b ^ 0xFF for b in good[20:60]) + good[60:]
    with pytest.raises(KernelImageError, match="corrupt gzip"):
        load_kernel(make_memory(16), _write(tmp_path, "bad.gz", corrupt))


def test_decompression_is_capped(make_memory, tmp_path):
    bomb = gzipped(arm64_image(body=bytes(8 * layout.MiB)))
    assert len(bomb) < 64 * 1024
    with pytest.raises(KernelImageError, match="exceeds"):
        load_kernel(make_memory(64), _write(tmp_path, "bomb.gz", bomb), max_decompressed_size=4 * layout.MiB)
    with pytest.raises(KernelImageError, match="exceeds"):  # the guest's memory is a cap too
        load_kernel(make_memory(8), _write(tmp_path, "bomb.gz", bomb))


def test_kernel_larger_than_guest_memory_is_refused(make_memory, tmp_path):
    with pytest.raises(KernelImageError, match="does not fit in 4 MiB"):
        load_kernel(make_memory(4), _write(tmp_path, "Image", arm64_image(body=bytes(3 * layout.MiB))))


def test_missing_file_names_the_path(make_memory, tmp_path):
    with pytest.raises(KernelImageError, match="cannot read kernel .*nope: No such file"):
        load_kernel(make_memory(4), tmp_path / "nope")


def test_loaded_kernel_end_covers_bss():
    header_only = arm64_image(image_size=0x40_0000)
    from petard.core.boot.kernel import ImageHeader

    loaded = LoadedKernel(0x8020_0000, len(header_only), ImageHeader.parse(header_only), False)
    assert loaded.end == 0x8020_0000 + 0x40_0000
    assert struct.unpack_from("<I", header_only, 0x38)[0] == 0x644D5241
    assert gzip.decompress(gzipped(header_only)) == header_only


def test_gzip_too_short_for_a_header_is_refused(make_memory, tmp_path):
    with pytest.raises(KernelImageError, match="decompressed to 10 bytes, too short"):
        load_kernel(make_memory(16), _write(tmp_path, "tiny.gz", gzipped(b"0123456789")))

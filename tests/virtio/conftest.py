"""Fixtures for the virtio tests: a disk image file and device benches."""

from __future__ import annotations

import pytest

from .driver import VirtioTestBench

DISK_SECTORS = 64


@pytest.fixture
def disk(tmp_path):
    """A 32 KiB image whose sector n is filled with the byte n."""
    path = tmp_path / "disk.img"
    path.write_bytes(b"".join(bytes([n]) * 512 for n in range(DISK_SECTORS)))
    return path


@pytest.fixture
def make_bench():
    benches = []

    def make(type_name: str, **options) -> VirtioTestBench:
        bench = VirtioTestBench(type_name, **options)
        benches.append(bench)
        return bench

    yield make
    for bench in benches:
        bench.close()


@pytest.fixture
def blk(make_bench, disk):
    return make_bench("virtio-blk", path=str(disk))


@pytest.fixture
def rng(make_bench):
    return make_bench("virtio-rng")

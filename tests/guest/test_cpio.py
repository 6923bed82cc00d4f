"""The newc writer, checked with GNU cpio and by reading archives back."""

from __future__ import annotations

import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from petard.guest import cpio


def cpio_list(archive: bytes, verbose: bool = False) -> list[str]:
    result = subprocess.run(["cpio", "-t" + ("v" if verbose else ""), "--quiet"], input=archive, capture_output=True)
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode().splitlines()


ENTRIES = [
    cpio.directory("bin"),
    cpio.regular_file("bin/tool", b"#!/bin/sh\necho hi\n", 0o755),
    cpio.symlink("bin/sh", "tool"),
    cpio.directory("dev"),
    cpio.char_device("dev/console", 5, 1),
    cpio.regular_file("odd", b"123"),  # data length not a multiple of 4
]


def test_gnu_cpio_lists_our_archive():
    archive = cpio.write_newc(ENTRIES)
    assert cpio_list(archive) == ["bin", "bin/tool", "bin/sh", "dev", "dev/console", "odd"]
    verbose = cpio_list(archive, verbose=True)
    assert verbose[1].startswith("-rwxr-xr-x") and " 18 " in verbose[1]
    assert verbose[2].startswith("lrwxrwxrwx") and verbose[2].endswith("bin/sh -> tool")
    assert verbose[4].startswith("crw-------") and "5,   1" in verbose[4]


def test_gnu_cpio_extracts_file_contents(tmp_path):
    archive = cpio.write_newc([e for e in ENTRIES if not e.is_char_device])
    subprocess.run(["cpio", "-idm", "--quiet"], input=archive, cwd=tmp_path, check=True)
    assert (tmp_path / "bin/tool").read_bytes() == b"#!/bin/sh\necho hi\n"
    assert (tmp_path / "bin/tool").stat().st_mode & 0o777 == 0o755
    assert (tmp_path / "bin/sh").readlink().as_posix() == "tool"
    assert (tmp_path / "odd").read_bytes() == b"123"


def test_read_back_and_reproducible():
    archive = cpio.write_newc(ENTRIES)
    assert cpio.read_newc(archive) == ENTRIES
    assert cpio.write_newc(ENTRIES) == archive
    assert len(archive) % 4 == 0


@pytest.mark.parametrize("name", ["", "/", "a/../b", "TRAILER!!!"])
def test_bad_names_are_refused(name):
    with pytest.raises(cpio.CpioError):
        cpio.write_newc([cpio.regular_file(name, b"")])


def test_duplicates_and_data_on_devices_are_refused():
    with pytest.raises(cpio.CpioError, match="duplicate"):
        cpio.write_newc([cpio.directory("a"), cpio.directory("a")])
    with pytest.raises(cpio.CpioError, match="carry data"):
        cpio.write_newc([cpio.CpioEntry("d", cpio.directory("d").mode, b"x")])


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.from_regex(r"[a-zA-Z0-9._-]{1,40}", fullmatch=True).filter(lambda n: n not in (".", "..")),
                       st.binary(max_size=70), max_size=8))  # fmt: skip
def test_round_trip_through_gnu_cpio(files):
    entries = [cpio.regular_file(name, data) for name, data in files.items()]
    archive = cpio.write_newc(entries)
    assert cpio.read_newc(archive) == entries
    assert cpio_list(archive) == list(files)

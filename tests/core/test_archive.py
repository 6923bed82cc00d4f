"""Unpacking downloaded tar archives: the rules hold with and without tarfile's own filters.

Each hostile archive is a real tar file written with tarfile; every rule is checked once
with the Python's native ``data`` filter switched off, as on Debian 12's Python 3.11.2,
and once with it where the Python has one. The last test runs the module under the
system's own Python when that is another interpreter (on Debian 12: 3.11.2, without filters).
"""

from __future__ import annotations

import io
import os
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from petard.core import archive as safe_archive


@pytest.fixture(params=["own checks only", "with the native filter"])
def native_filter(request, monkeypatch):
    if request.param == "own checks only":
        # On a Python with filters, "fully_trusted" is the one that changes nothing.
        monkeypatch.setattr(safe_archive, "_NATIVE_FILTER",
                            {"filter": "fully_trusted"} if hasattr(tarfile, "data_filter") else {})
    elif not hasattr(tarfile, "data_filter"):
        pytest.skip(f"Python {sys.version.split()[0]} has no tarfile filters")


def _tar(path: Path, *members: tuple[tarfile.TarInfo, bytes | None]) -> Path:
    with tarfile.open(path, "w") as archive:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            archive.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _file(name: str, data: bytes = b"content", mode: int = 0o644) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.mode = mode
    return info, data


def _entry(name: str, kind: bytes, linkname: str = "", mode: int = 0o755) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = kind, linkname, mode
    return info, None


def _extract(path: Path, destination: Path) -> None:
    with tarfile.open(path) as archive:
        safe_archive.extract_all(archive, destination)


def test_a_plain_archive_extracts_with_its_links_and_modes(tmp_path, native_filter):
    tar = _tar(tmp_path / "good.tar",
               _entry("pkg", tarfile.DIRTYPE),
               _file("pkg/configure", b"#!/bin/sh\n", mode=0o755),
               _file("pkg/README", b"read me", mode=0o444),
               _entry("pkg/docs", tarfile.SYMTYPE, "README"),
               _entry("pkg/README.copy", tarfile.LNKTYPE, "pkg/README", mode=0o444))
    out = tmp_path / "out"
    _extract(tar, out)
    assert (out / "pkg/configure").read_bytes() == b"#!/bin/sh\n"
    assert os.access(out / "pkg/configure", os.X_OK)
    assert stat.S_IMODE((out / "pkg/README").stat().st_mode) == 0o644   # the owner may always write
    assert os.readlink(out / "pkg/docs") == "README"
    assert (out / "pkg/README.copy").read_bytes() == b"read me"


def test_special_permission_bits_are_dropped(tmp_path, native_filter):
    tar = _tar(tmp_path / "modes.tar",
               _file("suid", mode=0o4755), _file("sgid", mode=0o2775), _file("shared", mode=0o666),
               _file("noexec", mode=0o611))
    out = tmp_path / "out"
    _extract(tar, out)
    modes = {name: stat.S_IMODE((out / name).stat().st_mode) for name in ("suid", "sgid", "shared", "noexec")}
    assert modes == {"suid": 0o755, "sgid": 0o755, "shared": 0o644, "noexec": 0o600}


def test_files_belong_to_whoever_unpacks_them(tmp_path, native_filter):
    info, data = _file("owned")
    info.uid, info.gid, info.uname, info.gname = 4242, 4242, "nobody-here", "nobody-here"
    out = tmp_path / "out"
    _extract(_tar(tmp_path / "owned.tar", (info, data)), out)
    assert ((out / "owned").stat().st_uid, (out / "owned").stat().st_gid) == (os.getuid(), os.getgid())


HOSTILE = {
    "absolute name": [_file("/etc/petard-escaped")],
    "dot-dot name": [_file("sub/../../petard-escaped")],
    "absolute symlink": [_entry("link", tarfile.SYMTYPE, "/etc/passwd")],
    "symlink climbing out": [_entry("sub/link", tarfile.SYMTYPE, "../../petard-escaped")],
    "hard link climbing out": [_entry("link", tarfile.LNKTYPE, "../petard-escaped")],
    "absolute hard link": [_entry("link", tarfile.LNKTYPE, "/etc/passwd")],
    # Each link alone stays inside; the second leads out only through the first on disk.
    "chained symlinks": [_entry("here", tarfile.SYMTYPE, "."), _entry("up", tarfile.SYMTYPE, "here/..")],
    "a file written through a symlink": [_entry("here", tarfile.SYMTYPE, "."),
                                         _file("here/../petard-escaped")],
    "character device": [_entry("tty", tarfile.CHRTYPE)],
    "block device": [_entry("disk", tarfile.BLKTYPE)],
    "fifo": [_entry("pipe", tarfile.FIFOTYPE)],
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_hostile_member_is_refused_and_nothing_escapes(tmp_path, native_filter, case):
    work = tmp_path / "work"
    work.mkdir()
    tar = _tar(tmp_path / "hostile.tar", *HOSTILE[case])
    with pytest.raises(tarfile.TarError):
        _extract(tar, work / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hostile.tar", "work"]
    assert sorted(p.name for p in work.iterdir()) == ["out"]
    assert not Path("/etc/petard-escaped").exists()


def test_the_rules_hold_on_the_systems_own_python(tmp_path):
    system_python = Path("/usr/bin/python3")
    if not system_python.exists() or system_python.resolve() == Path(sys.executable).resolve():
        pytest.skip("the system Python is the one running the suite")
    tar = _tar(tmp_path / "mixed.tar", _file("ok", b"fine"), _entry("here", tarfile.SYMTYPE, "."),
               _entry("up", tarfile.SYMTYPE, "here/.."))
    script = (
        "import importlib.util, sys, tarfile\n"
        "from pathlib import Path\n"
        "spec = importlib.util.spec_from_file_location('archive', sys.argv[1])\n"
        "archive = importlib.util.module_from_spec(spec); spec.loader.exec_module(archive)\n"
        "try:\n"
        "    with tarfile.open(sys.argv[2]) as tar: archive.extract_all(tar, Path(sys.argv[3]))\n"
        "except archive.UnsafeMemberError as error: print('refused', error)\n"
        "print(sys.version.split()[0], hasattr(tarfile, 'data_filter'))\n"
    )
    result = subprocess.run([str(system_python), "-c", script, safe_archive.__file__, str(tar), str(tmp_path / "out")],
                            capture_output=True, text=True, check=True)
    assert "refused 'up'" in result.stdout, result.stdout + result.stderr
    assert (tmp_path / "out/ok").read_bytes() == b"fine"
    assert not (tmp_path / "out/up").exists()

"""Unpacking downloaded ``.deb`` files with ``dpkg-deb`` (no maintainer scripts, no root)."""

from __future__ import annotations

import fnmatch
import shutil
import subprocess
import tarfile
from collections.abc import Sequence
from pathlib import Path

from petard.core.archive import extract_member


class DebError(RuntimeError):
    """dpkg-deb failed or the package lacks an expected file."""


def extract_package(deb: Path, destination: Path) -> Path:
    """``dpkg-deb -x``: the whole package under ``destination`` (replaced if present)."""
    staging = destination.with_name(destination.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    result = subprocess.run(["dpkg-deb", "-x", str(deb), str(staging)], capture_output=True, text=True)
    if result.returncode != 0:
        raise DebError(f"dpkg-deb -x {deb} failed: {result.stderr.strip()}")
    shutil.rmtree(destination, ignore_errors=True)
    staging.replace(destination)
    return destination


def extract_members(
    deb: Path, destination: Path, patterns: Sequence[str], max_members: int | None = None
) -> list[Path]:
    """Only the files matching ``patterns`` (globs on paths like ``boot/vmlinuz-*``).

    Streams ``dpkg-deb --fsys-tarfile`` so a 350 MB kernel package is not unpacked
    whole; with ``max_members`` it stops reading once that many files are out.
    """
    destination.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        ["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    extracted: list[Path] = []
    assert process.stdout is not None
    try:
        with tarfile.open(fileobj=process.stdout, mode="r|") as archive:
            for member in archive:
                name = member.name.removeprefix("./")
                if member.isfile() and any(fnmatch.fnmatchcase(name, p) for p in patterns):
                    try:
                        extract_member(archive, member, destination)
                    except tarfile.TarError as error:
                        raise DebError(f"{deb}: {error}") from None
                    extracted.append(destination / name)
                    if max_members is not None and len(extracted) >= max_members:
                        break
    finally:
        stopped_early = process.poll() is None and max_members is not None and len(extracted) >= max_members
        if stopped_early:
            process.kill()
        process.stdout.close()
        stderr = process.stderr.read().decode(errors="replace") if process.stderr else ""
        returncode = process.wait()
    if returncode != 0 and not stopped_early:
        raise DebError(f"dpkg-deb --fsys-tarfile {deb} failed: {stderr.strip()}")
    return extracted

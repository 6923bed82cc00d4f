"""Fetching and caching the guest artifacts: Debian's arm64 kernel and a busybox initramfs.

Cache directory: ``$PETARD_CACHE`` or ``~/.cache/petard``::

    apt/                      private apt state (see petard.guest.apt)
    debs/*.deb                downloaded packages
    kernel/<package>/boot/    vmlinuz-<abi> (an uncompressed arm64 Image on Debian) and config-<abi>
    busybox/<deb>/bin/busybox
    initrd/initrd-<recipe>.cpio.gz
    guest-artifacts.json      what the last fetch produced (makes later calls instant)

:func:`artifacts` returns the paths, fetching only what is missing; :func:`fetch`
does the same and can ``refresh`` the package lists to pick up a newer kernel.
The initrd is rebuilt (offline) whenever its recipe (init script, busybox,
builder version) changes.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from petard.guest import initramfs
from petard.guest.apt import KERNEL_METAPACKAGE, PrivateApt
from petard.guest.debs import DebError, extract_members, extract_package
from petard.core.host_cache import cache_dir
from petard.guest.init_script import BUSYBOX_PATH, INIT_SCRIPT

BUSYBOX_PACKAGE = "busybox-static"
MANIFEST_NAME = "guest-artifacts.json"
KERNEL_MEMBERS = ("boot/vmlinuz-*", "boot/config-*")
INITRAMFS_FORMAT = 2  # bump when the image layout changes in a way the recipe hash cannot see

Progress = Callable[[str], None]


def stderr_progress(message: str) -> None:
    print(f"petard-guest: {message}", file=sys.stderr, flush=True)



@dataclass(frozen=True)
class GuestArtifacts:
    """Paths of a ready guest: boot ``kernel`` with ``initrd``."""

    kernel: Path
    initrd: Path
    kernel_config: Path
    busybox: Path
    kernel_package: str
    kernel_release: str  # e.g. "6.1.0-56-arm64", the name of /lib/modules/<release>


def _recipe(busybox_deb: str) -> str:
    text = json.dumps([INITRAMFS_FORMAT, busybox_deb, INIT_SCRIPT])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@contextmanager
def _locked(root: Path) -> Iterator[None]:
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _read_manifest(root: Path) -> dict | None:
    try:
        return json.loads((root / MANIFEST_NAME).read_text())
    except (OSError, ValueError):
        return None


def _from_manifest(root: Path, manifest: dict) -> GuestArtifacts | None:
    try:
        found = GuestArtifacts(
            kernel=root / manifest["kernel"],
            initrd=root / manifest["initrd"],
            kernel_config=root / manifest["kernel_config"],
            busybox=root / manifest["busybox"],
            kernel_package=manifest["kernel_package"],
            kernel_release=manifest["kernel_release"],
        )
    except (KeyError, TypeError):
        return None
    if not all(p.is_file() for p in (found.kernel, found.initrd, found.kernel_config, found.busybox)):
        return None
    return found


def cached_artifacts(root: Path | None = None) -> GuestArtifacts | None:
    """The artifacts if they are complete and current in the cache; never touches the network."""
    root = root or cache_dir()
    manifest = _read_manifest(root)
    if manifest is None or manifest.get("initrd_recipe") != _recipe(manifest.get("busybox_deb", "")):
        return None
    return _from_manifest(root, manifest)


def artifacts(progress: Progress | None = stderr_progress, root: Path | None = None) -> GuestArtifacts:
    """Paths of the guest kernel and initrd, fetching/building them first if needed."""
    return cached_artifacts(root) or fetch(progress=progress, root=root)


def fetch(refresh: bool = False, progress: Progress | None = stderr_progress, root: Path | None = None) -> GuestArtifacts:
    """Download (if needed) the kernel and busybox, unpack them and build the initrd.

    ``refresh`` re-reads the Debian package lists, so a newer kernel ABI is picked up.
    """
    root = root or cache_dir()
    say = progress or (lambda message: None)
    with _locked(root):
        if not refresh and (ready := cached_artifacts(root)):
            return ready
        manifest = _read_manifest(root) or {}
        kernel_deb = root / "debs" / manifest.get("kernel_deb", "-")
        busybox_deb = root / "debs" / manifest.get("busybox_deb", "-")
        if refresh or not (kernel_deb.is_file() and busybox_deb.is_file()):
            apt = PrivateApt(root / "apt", progress=say)
            apt.ensure_lists(refresh=refresh)
            kernel_package = apt.kernel_package()
            say(f"{KERNEL_METAPACKAGE} -> {kernel_package}")
            kernel_deb, busybox_deb = apt.download([kernel_package, BUSYBOX_PACKAGE], root / "debs")
        else:
            kernel_package = manifest["kernel_package"]

        kernel, config = _unpack_kernel(root, kernel_package, kernel_deb, say)
        busybox = _unpack_busybox(root, busybox_deb, say)
        recipe = _recipe(busybox_deb.name)
        initrd = root / "initrd" / f"initrd-{recipe}.cpio.gz"
        if not initrd.is_file():
            initrd.parent.mkdir(parents=True, exist_ok=True)
            size = initramfs.write_busybox_initramfs(busybox, initrd)
            say(f"built {initrd} ({size / 1e6:.2f} MB)")
        ready = GuestArtifacts(
            kernel=kernel,
            initrd=initrd,
            kernel_config=config,
            busybox=busybox,
            kernel_package=kernel_package,
            kernel_release=kernel.name.removeprefix("vmlinuz-"),
        )
        record = {key: str(Path(value).relative_to(root)) if isinstance(value, Path) else value
                  for key, value in asdict(ready).items()}  # fmt: skip
        record.update(kernel_deb=kernel_deb.name, busybox_deb=busybox_deb.name, initrd_recipe=recipe)
        temporary = root / (MANIFEST_NAME + ".tmp")
        temporary.write_text(json.dumps(record, indent=2) + "\n")
        temporary.replace(root / MANIFEST_NAME)
        say(f"kernel {kernel}")
        say(f"initrd {initrd}")
        return ready


def _unpack_kernel(root: Path, package: str, deb: Path, say: Progress) -> tuple[Path, Path]:
    boot = root / "kernel" / package / "boot"
    kernels, configs = sorted(boot.glob("vmlinuz-*")), sorted(boot.glob("config-*"))
    if not (kernels and configs):
        say(f"unpacking {deb.name}")
        extract_members(deb, root / "kernel" / package, KERNEL_MEMBERS, max_members=len(KERNEL_MEMBERS))
        kernels, configs = sorted(boot.glob("vmlinuz-*")), sorted(boot.glob("config-*"))
    if not (kernels and configs):
        raise DebError(f"{deb.name} holds no boot/vmlinuz-* and boot/config-*")
    return kernels[0], configs[0]


def _unpack_busybox(root: Path, deb: Path, say: Progress) -> Path:
    unpacked = root / "busybox" / deb.stem
    busybox = unpacked / BUSYBOX_PATH
    if not busybox.is_file():
        say(f"unpacking {deb.name}")
        extract_package(deb, unpacked)
    if not busybox.is_file():
        raise DebError(f"{deb.name} holds no {BUSYBOX_PATH}")
    return busybox

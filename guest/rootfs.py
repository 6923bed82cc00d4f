"""A guest that boots from a virtio-blk root drive: an ext4 image and a module initramfs.

    from petard.guest.rootfs import rootfs_artifacts, build_rootfs_image
    guest = rootfs_artifacts()      # kernel, initrd (modules + switch_root), rootfs image
    build_rootfs_image(guest.busybox, "my.ext4", extra_files={"etc/petard/run": script})

The root file system is made by Debian's e2fsprogs (``mkfs.ext4 -d``) from a staging
directory holding busybox, ``/sbin/init`` (``rootfs_scripts.ROOTFS_INIT``) and the mount
points; files given in ``extra_files`` (a test's ``/etc/petard/run`` hook, say) are added.
The initramfs holds busybox, the stage-1 ``/init`` and the kernel modules the Debian kernel
needs for virtio-mmio, virtio-blk, virtio-rng, virtio-balloon, virtio-net, virtio-vsock and
ext4, taken from the same kernel package
as the kernel and ordered by their ``.modinfo`` dependencies (``petard.guest.kmod``).

Cache (next to the base artifacts, see ``petard.guest.cache``)::

    modules/<kernel package>/lib/modules/<release>/...   the extracted .ko files
    rootfs/initrd-rootfs-<recipe>.cpio.gz
    rootfs/rootfs-<recipe>.ext4

Both are rebuilt offline whenever their recipe (kernel and busybox packages, scripts,
module list, image size, builder format) changes.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from petard.guest import cache, kmod
from petard.guest.debs import extract_members
from petard.guest.initramfs import busybox_initramfs
from petard.guest.init_script import BUSYBOX_PATH
from petard.guest.rootfs_scripts import LOAD_ORDER_FILE, ROOTFS_INIT, STAGE1_INIT

ROOTFS_FORMAT = 1  # bump when the layout changes in a way the recipe cannot see
MKFS_EXT4 = "mkfs.ext4"
DEFAULT_IMAGE_MIB = 64
ROOTFS_LABEL = "petard-root"
# A fixed file-system UUID and hash seed keep images of the same recipe alike.
ROOTFS_UUID = "2a3f7b1e-5c4d-4e6f-8a9b-0c1d2e3f4a5b"

# The modules the guest loads, in this order of roots (dependencies come first): the virtio
# transport and the drivers of every virtio device petard builds, and ext4 for the root.
GUEST_MODULES = ("virtio_mmio", "virtio_blk", "virtio_rng", "virtio_balloon", "virtio_net",
                 "vmw_vsock_virtio_transport", "crc32c_generic", "ext4")
MODULE_MEMBERS = (
    "lib/modules/*/kernel/drivers/virtio/virtio_mmio.ko",
    "lib/modules/*/kernel/drivers/virtio/virtio_balloon.ko",
    "lib/modules/*/kernel/drivers/block/virtio_blk.ko",
    "lib/modules/*/kernel/drivers/char/hw_random/virtio-rng.ko",
    "lib/modules/*/kernel/drivers/net/virtio_net.ko",
    "lib/modules/*/kernel/drivers/net/net_failover.ko",
    "lib/modules/*/kernel/net/core/failover.ko",
    "lib/modules/*/kernel/net/vmw_vsock/vsock.ko",
    "lib/modules/*/kernel/net/vmw_vsock/vmw_vsock_virtio_transport_common.ko",
    "lib/modules/*/kernel/net/vmw_vsock/vmw_vsock_virtio_transport.ko",
    "lib/modules/*/kernel/fs/ext4/ext4.ko",
    "lib/modules/*/kernel/fs/jbd2/jbd2.ko",
    "lib/modules/*/kernel/fs/mbcache.ko",
    "lib/modules/*/kernel/lib/crc16.ko",
    "lib/modules/*/kernel/crypto/crc32c_generic.ko",
)
ROOTFS_DIRECTORIES = ("bin", "sbin", "dev", "proc", "sys", "run", "tmp", "root", "etc/petard", "mnt", "data")
GUEST_MODULE_DIR = "lib/modules"


class RootfsError(RuntimeError):
    """mkfs.ext4 is missing or failed, or a module is missing from the kernel package."""


@dataclass(frozen=True)
class RootfsArtifacts:
    """A guest booting from a drive: ``kernel`` + ``initrd`` (modules, switch_root) and the
    ``rootfs`` ext4 image to attach as the root drive (copy it before writing to it)."""

    kernel: Path
    initrd: Path
    rootfs: Path
    busybox: Path
    kernel_release: str


def build_rootfs_image(busybox: Path, output: Path, size_mib: int = DEFAULT_IMAGE_MIB,
                       extra_files: Mapping[str, bytes | str] | None = None) -> Path:
    """An ext4 image at ``output`` with busybox, /sbin/init and ``extra_files`` (path in the
    image -> content; executable when it is a script or an ELF program)."""
    if shutil.which(MKFS_EXT4) is None:
        raise RootfsError(f"{MKFS_EXT4} not found: install Debian's e2fsprogs")
    output = Path(output)
    with tempfile.TemporaryDirectory(prefix="petard-rootfs-") as staging_name:
        staging = Path(staging_name)
        for name in ROOTFS_DIRECTORIES:
            (staging / name).mkdir(parents=True, exist_ok=True)
        (staging / "tmp").chmod(0o1777)
        (staging / "root").chmod(0o700)
        shutil.copyfile(busybox, staging / BUSYBOX_PATH)
        (staging / BUSYBOX_PATH).chmod(0o755)
        (staging / "bin/sh").symlink_to("busybox")
        _write(staging / "sbin/init", ROOTFS_INIT)
        for name, content in (extra_files or {}).items():
            _write(staging / name.strip("/"), content)
        temporary = output.with_name(output.name + ".tmp")
        temporary.unlink(missing_ok=True)
        command = [MKFS_EXT4, "-q", "-F", "-L", ROOTFS_LABEL, "-U", ROOTFS_UUID,
                   "-E", f"root_owner=0:0,hash_seed={ROOTFS_UUID}", "-d", str(staging),
                   str(temporary), f"{size_mib}M"]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            temporary.unlink(missing_ok=True)
            raise RootfsError(f"{' '.join(command)} failed: {result.stderr.strip()}")
        temporary.replace(output)
    return output


def _write(path: Path, content: bytes | str) -> None:
    data = content.encode() if isinstance(content, str) else content
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    path.chmod(0o755 if data.startswith((b"#!", b"\x7fELF")) else 0o644)


def extract_modules(root: Path, kernel_package: str, kernel_deb: Path, release: str) -> dict[str, Path]:
    """The guest's modules from the kernel package, extracted once; name -> file."""
    destination = root / "modules" / kernel_package
    module_dir = destination / GUEST_MODULE_DIR / release
    found = {kmod.module_name(p): p for p in module_dir.rglob("*.ko")} if module_dir.is_dir() else {}
    if len(found) < len(MODULE_MEMBERS):
        extract_members(kernel_deb, destination, MODULE_MEMBERS)
        found = {kmod.module_name(p): p for p in module_dir.rglob("*.ko")}
    return found


def build_module_initramfs(busybox: Path, modules: list[Path], output: Path) -> int:
    """The stage-1 initramfs: busybox, STAGE1_INIT and ``modules`` in load order."""
    names = [path.name for path in modules]
    image = busybox_initramfs(busybox.read_bytes(), STAGE1_INIT)
    for path in modules:
        image.add_file(f"{GUEST_MODULE_DIR}/{path.name}", path.read_bytes())
    image.add_file(LOAD_ORDER_FILE, ("\n".join(names) + "\n").encode())
    image.add_directory("newroot")
    data = image.build()
    temporary = output.with_name(output.name + ".tmp")
    temporary.write_bytes(data)
    temporary.replace(output)
    return len(data)


def _recipe(*parts: object) -> str:
    text = json.dumps([ROOTFS_FORMAT, *[str(part) for part in parts]])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def rootfs_artifacts(progress: cache.Progress | None = cache.stderr_progress,
                     root: Path | None = None) -> RootfsArtifacts:
    """The kernel, module initramfs and root image, fetching/building what is missing."""
    root = root or cache.cache_dir()
    say = progress or (lambda message: None)
    base = cache.artifacts(progress=progress, root=root)
    manifest = json.loads((root / cache.MANIFEST_NAME).read_text())
    kernel_deb = root / "debs" / manifest["kernel_deb"]
    busybox_deb = manifest["busybox_deb"]
    with cache._locked(root):
        modules = extract_modules(root, base.kernel_package, kernel_deb, base.kernel_release)
        try:
            ordered = kmod.load_order(GUEST_MODULES, modules)
        except kmod.ModuleError as error:
            raise RootfsError(f"{base.kernel_package}: {error}") from None
        out = root / "rootfs"
        out.mkdir(parents=True, exist_ok=True)
        initrd_recipe = _recipe(manifest["kernel_deb"], busybox_deb, STAGE1_INIT, [p.name for p in ordered])
        initrd = out / f"initrd-rootfs-{initrd_recipe}.cpio.gz"
        if not initrd.is_file():
            size = build_module_initramfs(base.busybox, ordered, initrd)
            say(f"built {initrd} ({size / 1e6:.2f} MB)")
        image_recipe = _recipe(busybox_deb, ROOTFS_INIT, DEFAULT_IMAGE_MIB, ROOTFS_UUID)
        image = out / f"rootfs-{image_recipe}.ext4"
        if not image.is_file():
            build_rootfs_image(base.busybox, image)
            say(f"built {image}")
    return RootfsArtifacts(kernel=base.kernel, initrd=initrd, rootfs=image, busybox=base.busybox,
                           kernel_release=base.kernel_release)

"""Guest artifacts: Debian's arm64 kernel and busybox fetched into a cache, initramfs built.

    from petard.guest import artifacts
    paths = artifacts()          # fetches on first use, instant afterwards
    paths.kernel, paths.initrd

Command line: ``python -m petard.guest fetch [--refresh]`` (see ``petard.guest.__main__``).
Modules: ``apt`` (private arm64 apt), ``debs`` (unpacking), ``cpio`` (newc format),
``initramfs`` (image assembly), ``init_script`` (the guest's /init),
``cache`` (cache layout and the fetch itself), ``overlay`` (extra files appended to an
initrd as a second cpio archive), ``rootfs``/``rootfs_scripts``/``kmod`` (an ext4 root image
and the module initrd that mounts it).
"""

from petard.guest.cache import GuestArtifacts, artifacts, cache_dir, cached_artifacts, fetch
from petard.guest.init_script import READY_MARKER, TEST_POWEROFF_ARG

__all__ = [
    "GuestArtifacts",
    "READY_MARKER",
    "TEST_POWEROFF_ARG",
    "artifacts",
    "cache_dir",
    "cached_artifacts",
    "fetch",
]

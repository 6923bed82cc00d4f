"""``python -m petard.guest``: fetch the guest artifacts or print where they are.

    python -m petard.guest fetch [--refresh] [--quiet]   download/build, print kernel= and initrd=
    python -m petard.guest paths                         print them if cached (exit 1 otherwise)
    python -m petard.guest rootfs [--quiet]              also build the drive-booting guest: print
                                                         kernel=, initrd= (modules) and rootfs= (ext4)
"""

from __future__ import annotations

import argparse
import sys

from petard.guest.apt import AptError
from petard.guest.cache import GuestArtifacts, cache_dir, cached_artifacts, fetch, stderr_progress
from petard.guest.debs import DebError


def _print(found: GuestArtifacts) -> None:
    print(f"kernel={found.kernel}")
    print(f"initrd={found.initrd}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m petard.guest", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    fetch_parser = commands.add_parser("fetch", help="download the kernel and busybox, build the initrd")
    fetch_parser.add_argument("--refresh", action="store_true", help="re-read package lists (newer kernel)")
    fetch_parser.add_argument("--quiet", action="store_true", help="no progress messages")
    commands.add_parser("paths", help="print the cached artifact paths without fetching")
    rootfs_parser = commands.add_parser("rootfs", help="build the module initrd and ext4 root image too")
    rootfs_parser.add_argument("--quiet", action="store_true", help="no progress messages")
    args = parser.parse_args(argv)

    if args.command == "paths":
        found = cached_artifacts()
        if found is None:
            print(f"no guest artifacts in {cache_dir()}; run: python -m petard.guest fetch", file=sys.stderr)
            return 1
        _print(found)
        return 0
    if args.command == "rootfs":
        from petard.guest.rootfs import RootfsError, rootfs_artifacts

        try:
            built = rootfs_artifacts(progress=None if args.quiet else stderr_progress)
        except (AptError, DebError, RootfsError, OSError) as error:
            print(f"petard-guest: {error}", file=sys.stderr)
            return 1
        print(f"kernel={built.kernel}")
        print(f"initrd={built.initrd}")
        print(f"rootfs={built.rootfs}")
        return 0
    try:
        found = fetch(refresh=args.refresh, progress=None if args.quiet else stderr_progress)
    except (AptError, DebError, OSError) as error:
        print(f"petard-guest: {error}", file=sys.stderr)
        return 1
    _print(found)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

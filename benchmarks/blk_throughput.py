"""Block throughput inside the guest: petard (Unicorn) vs qemu-system-aarch64 TCG.

Both run the same Debian kernel, module initramfs and root image (``petard.guest.rootfs``),
1 vCPU, 256 MiB of RAM, with a second raw drive of ``--mib`` MiB. The guest's hook writes
the whole drive sequentially, then reads it back, each with ``dd bs=1M`` and direct I/O
(``oflag=direct`` / ``iflag=direct``: no guest page cache), timing each pass with
``/proc/uptime``. petard is configured through its HTTP API like a Firecracker user would
(drives on virtio-mmio, Writeback cache); QEMU gets ``virtio-blk-device`` drives on its
virt machine's virtio-mmio bus (default writeback cache). Each VM gets a freshly created
(sparse) data file: the host's first write into a sparse file costs about three times a
rewrite of pages already in its page cache, so a file shared between the VMMs would favour
whichever runs second. Prints MB/s per pass and run, the medians, and petard/QEMU ratios
(goal >= 0.8).

    .venv/bin/python benchmarks/blk_throughput.py [--runs 3] [--mib 256]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from petard.backends.unicorn import libunicorn
from petard.guest import TEST_POWEROFF_ARG
from petard.guest.rootfs import build_rootfs_image, rootfs_artifacts
from petard.guest.rootfs_scripts import RUN_HOOK

BOOT_ARGS = f"console=ttyS0 reboot=k panic=1 {TEST_POWEROFF_ARG}"
RESULT = re.compile(r"BLK-(WRITE|READ) (\d+) ([0-9.]+) ([0-9.]+)")
TIMEOUT_S = 1800

# The data drive is the one whose size is DATA_MIB MiB (device names differ between VMMs).
HOOK = """#!/bin/sh
want=$(({mib} * 2048))
for disk in /sys/block/vd*; do
    [ "$(cat $disk/size)" = "$want" ] && dev=/dev/${{disk##*/}}
done
t0=$(cut -d' ' -f1 /proc/uptime)
dd if=/dev/zero of=$dev bs=1M count={mib} oflag=direct 2>/dev/null
t1=$(cut -d' ' -f1 /proc/uptime)
echo "BLK-WRITE {mib} $t0 $t1"
t0=$(cut -d' ' -f1 /proc/uptime)
dd if=$dev of=/dev/null bs=1M count={mib} iflag=direct 2>/dev/null
t1=$(cut -d' ' -f1 /proc/uptime)
echo "BLK-READ {mib} $t0 $t1"
"""


def rates(console: str) -> dict[str, float]:
    found = {}
    for kind, mib, start, end in RESULT.findall(console):
        found[kind] = int(mib) * 1.048576 / (float(end) - float(start))  # MB/s
    if set(found) != {"WRITE", "READ"}:
        raise RuntimeError(f"the guest did not report both passes:\n{console[-3000:]}")
    return found


def api(socket_path: str, method: str, path: str, body: dict) -> None:
    payload = json.dumps(body).encode()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        connection.connect(socket_path)
        connection.sendall(f"{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                           f"Content-Length: {len(payload)}\r\n\r\n".encode() + payload)
        reply = connection.recv(4096).decode(errors="replace")
    if " 204 " not in reply.split("\r\n", 1)[0] + " ":
        raise RuntimeError(f"{method} {path}: {reply}")


def wait_for_api(socket_path: str, timeout_s: float = 30) -> None:
    """The socket file appears at bind(); connections succeed only after listen()."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                probe.connect(socket_path)
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def run_petard(guest, root: Path, data: Path, workdir: Path) -> str:
    socket_path = str(workdir / "api.sock")
    serial = workdir / "serial.log"
    serial.unlink(missing_ok=True)
    process = subprocess.Popen([sys.executable, "-m", "petard", "--api-sock", socket_path, "--backend", "unicorn",
                                "--level", "Warning"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env={**os.environ, "PETARD_DISABLE_PLUGIN_AUTOLOAD": "1"})  # built-ins only
    try:
        wait_for_api(socket_path)
        api(socket_path, "PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": 256})
        api(socket_path, "PUT", "/boot-source", {"kernel_image_path": str(guest.kernel),
                                                  "initrd_path": str(guest.initrd), "boot_args": BOOT_ARGS})
        api(socket_path, "PUT", "/serial", {"serial_out_path": str(serial)})
        for drive_id, path, is_root in (("rootfs", root, True), ("data", data, False)):
            api(socket_path, "PUT", f"/drives/{drive_id}", {"drive_id": drive_id, "path_on_host": str(path),
                                                              "is_root_device": is_root, "cache_type": "Writeback"})
        api(socket_path, "PUT", "/actions", {"action_type": "InstanceStart"})
        process.wait(TIMEOUT_S)
    finally:
        if process.poll() is None:
            process.kill()
        os.unlink(socket_path)
    return serial.read_text(errors="replace")


def run_qemu(guest, root: Path, data: Path) -> str:
    command = ["qemu-system-aarch64", "-M", "virt,gic-version=3", "-cpu", "cortex-a57", "-m", "256",
               "-nographic", "-no-reboot", "-nic", "none",
               "-kernel", str(guest.kernel), "-initrd", str(guest.initrd),
               "-append", f"console=ttyAMA0 reboot=k panic=1 {TEST_POWEROFF_ARG} root=/dev/vda rw",
               "-drive", f"if=none,id=data,format=raw,file={data}", "-device", "virtio-blk-device,drive=data",
               "-drive", f"if=none,id=root,format=raw,file={root}", "-device", "virtio-blk-device,drive=root"]
    result = subprocess.run(command, capture_output=True, timeout=TIMEOUT_S, stdin=subprocess.DEVNULL)
    return result.stdout.decode(errors="replace")


def fresh_drive(path: Path, mib: int) -> Path:
    """A new sparse file of `mib` MiB at `path` (replacing the last VM's)."""
    path.unlink(missing_ok=True)
    with open(path, "wb") as file:
        file.truncate(mib << 20)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--mib", type=int, default=256)
    parser.add_argument("--dir", type=Path, default=None,
                        help="where the drive files go (default: the temporary directory); e.g. /dev/shm "
                             "to leave the host's disk out of the write figures")
    args = parser.parse_args()
    if shutil.which("qemu-system-aarch64") is None:
        sys.exit("qemu-system-aarch64 is needed as the peer (Debian package qemu-system-arm)")
    guest = rootfs_artifacts()
    # petard (a child process) picks its libunicorn the same way this process just did.
    print(f"petard runs on {libunicorn.loaded_library()}")
    with tempfile.TemporaryDirectory(prefix="petard-blk-bench-", dir=args.dir) as name:
        workdir = Path(name)
        root = build_rootfs_image(guest.busybox, workdir / "root.ext4", 32, {RUN_HOOK: HOOK.format(mib=args.mib)})
        data = workdir / "data.img"
        results = {"petard": [], "qemu": []}
        print(f"{'run':>4}{'petard write':>14}{'petard read':>13}{'qemu write':>12}{'qemu read':>11}   (MB/s)")
        for run in range(1, args.runs + 1):
            results["petard"].append(rates(run_petard(guest, root, fresh_drive(data, args.mib), workdir)))
            results["qemu"].append(rates(run_qemu(guest, root, fresh_drive(data, args.mib))))
            p, q = results["petard"][-1], results["qemu"][-1]
            print(f"{run:>4}{p['WRITE']:>14.1f}{p['READ']:>13.1f}{q['WRITE']:>12.1f}{q['READ']:>11.1f}", flush=True)
        median = {vmm: {kind: statistics.median(r[kind] for r in runs) for kind in ("WRITE", "READ")}
                  for vmm, runs in results.items()}
        p, q = median["petard"], median["qemu"]
        print(f"{'med':>4}{p['WRITE']:>14.1f}{p['READ']:>13.1f}{q['WRITE']:>12.1f}{q['READ']:>11.1f}")
        print(f"ratio petard/qemu: write {p['WRITE'] / q['WRITE']:.2f}x, read {p['READ'] / q['READ']:.2f}x "
              f"(goal >= 0.8x)")


if __name__ == "__main__":
    main()

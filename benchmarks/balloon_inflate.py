"""Balloon inflate and deflate time: petard (Unicorn) vs qemu-system-aarch64 TCG.

Both boot the same Debian kernel, module initramfs and root image (``petard.guest.rootfs``),
1 vCPU, ``--mem-mib`` MiB, with a virtio-balloon device on virtio-mmio, and wait at the
guest's shell. Then the balloon is set to take ``--mib`` MiB and back to nothing; each step
is timed on the host from the request until the device reports the driver there: petard
through its Firecracker API (``PATCH /balloon``, ``actual_pages`` of ``GET
/balloon/statistics``), QEMU through QMP (``balloon``, ``query-balloon``), both polled every
20 ms. Prints the times per run, the medians and the petard/QEMU ratios.

    .venv/bin/python benchmarks/balloon_inflate.py [--runs 3] [--mib 1024] [--mem-mib 1536]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from petard.guest.rootfs import build_rootfs_image, rootfs_artifacts
from petard.guest.rootfs_scripts import ROOTFS_READY_MARKER

BOOT_ARGS = "console=ttyS0 reboot=k panic=1 quiet"
POLL_S = 0.02
TIMEOUT_S = 600
MIB = 1 << 20


def http(socket_path: str, method: str, path: str, body: dict | None = None) -> tuple[int, dict | None]:
    payload = json.dumps(body).encode() if body is not None else b""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        connection.connect(socket_path)
        connection.sendall(f"{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                           f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n".encode() + payload)
        reply = b""
        while chunk := connection.recv(65536):
            reply += chunk
    head, _, text = reply.decode(errors="replace").partition("\r\n\r\n")
    status = int(head.split()[1])
    return status, json.loads(text) if text.strip() else None


def wait_until(condition, what: str) -> float:
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > TIMEOUT_S:
            raise RuntimeError(f"{what} did not happen within {TIMEOUT_S} s")
        time.sleep(POLL_S)
    return time.monotonic() - started


class PetardGuest:
    def __init__(self, guest, root: Path, workdir: Path, mem_mib: int):
        self.socket = str(workdir / "api.sock")
        self.serial = workdir / "serial.log"
        self.serial.unlink(missing_ok=True)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "petard", "--api-sock", self.socket, "--backend", "unicorn", "--level", "Warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.PIPE,
            env={**os.environ, "PETARD_DISABLE_PLUGIN_AUTOLOAD": "1"})
        wait_until(lambda: os.path.exists(self.socket), "petard's API socket")
        for path, body in (("/machine-config", {"vcpu_count": 1, "mem_size_mib": mem_mib}),
                           ("/boot-source", {"kernel_image_path": str(guest.kernel), "initrd_path": str(guest.initrd),
                                             "boot_args": BOOT_ARGS}),
                           ("/serial", {"serial_out_path": str(self.serial)}),
                           ("/drives/rootfs", {"drive_id": "rootfs", "path_on_host": str(root),
                                               "is_root_device": True, "is_read_only": True}),
                           ("/balloon", {"amount_mib": 0, "deflate_on_oom": False, "stats_polling_interval_s": 1}),
                           ("/actions", {"action_type": "InstanceStart"})):
            status, reply = http(self.socket, "PUT", path, body)
            if status != 204:
                raise RuntimeError(f"PUT {path}: {status} {reply}")
        wait_until(lambda: ROOTFS_READY_MARKER in self.serial.read_text(errors="replace")
                   if self.serial.exists() else False, "the guest's boot")

    def actual_mib(self) -> float:
        status, stats = http(self.socket, "GET", "/balloon/statistics")
        return stats["actual_pages"] / 256 if status == 200 else -1

    def balloon(self, mib: int) -> float:
        started = time.monotonic()
        status, reply = http(self.socket, "PATCH", "/balloon", {"amount_mib": mib})
        if status != 204:
            raise RuntimeError(f"PATCH /balloon: {status} {reply}")
        wait_until(lambda: self.actual_mib() == mib, f"petard's balloon at {mib} MiB")
        return time.monotonic() - started

    def close(self) -> None:
        self.process.kill()
        self.process.wait()


class QemuGuest:
    def __init__(self, guest, root: Path, workdir: Path, mem_mib: int):
        self.mem_mib = mem_mib
        qmp_path = str(workdir / "qmp.sock")
        self.console = workdir / "qemu.log"
        self.process = subprocess.Popen(
            ["qemu-system-aarch64", "-M", "virt,gic-version=3", "-cpu", "cortex-a57", "-m", str(mem_mib),
             "-nographic", "-no-reboot", "-nic", "none", "-kernel", str(guest.kernel), "-initrd", str(guest.initrd),
             "-append", "console=ttyAMA0 reboot=k panic=1 quiet root=/dev/vda ro",
             "-drive", f"if=none,id=root,format=raw,readonly=on,file={root}", "-device", "virtio-blk-device,drive=root",
             "-device", "virtio-balloon-device", "-qmp", f"unix:{qmp_path},server=on,wait=off"],
            stdout=open(self.console, "wb"), stderr=subprocess.STDOUT, stdin=subprocess.PIPE)
        wait_until(lambda: os.path.exists(qmp_path), "qemu's QMP socket")
        self.qmp = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.qmp.connect(qmp_path)
        self.qmp_file = self.qmp.makefile("rw")
        self.qmp_file.readline()                                   # the greeting
        self.command("qmp_capabilities")
        wait_until(lambda: ROOTFS_READY_MARKER in self.console.read_text(errors="replace"), "the guest's boot")

    def command(self, name: str, **arguments) -> dict:
        self.qmp_file.write(json.dumps({"execute": name, "arguments": arguments}) + "\n")
        self.qmp_file.flush()
        while True:
            reply = json.loads(self.qmp_file.readline())
            if "return" in reply or "error" in reply:
                return reply

    def actual_mib(self) -> float:
        return (self.mem_mib * MIB - self.command("query-balloon")["return"]["actual"]) / MIB

    def balloon(self, mib: int) -> float:
        started = time.monotonic()
        self.command("balloon", value=(self.mem_mib - mib) * MIB)
        wait_until(lambda: self.actual_mib() == mib, f"qemu's balloon at {mib} MiB")
        return time.monotonic() - started

    def close(self) -> None:
        self.process.kill()
        self.process.wait()
        self.qmp.close()


def measure(kind, guest, root: Path, workdir: Path, args) -> tuple[float, float]:
    vm = kind(guest, root, Path(tempfile.mkdtemp(dir=workdir)), args.mem_mib)
    try:
        return vm.balloon(args.mib), vm.balloon(0)
    finally:
        vm.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--mib", type=int, default=1024)
    parser.add_argument("--mem-mib", type=int, default=1536)
    args = parser.parse_args()
    if shutil.which("qemu-system-aarch64") is None:
        sys.exit("qemu-system-aarch64 is needed as the peer (Debian package qemu-system-arm)")
    guest = rootfs_artifacts()
    with tempfile.TemporaryDirectory(prefix="petard-balloon-bench-") as name:
        workdir = Path(name)
        root = build_rootfs_image(guest.busybox, workdir / "root.ext4", 32)
        results = {"petard": [], "qemu": []}
        print(f"balloon {args.mib} MiB of {args.mem_mib} MiB, seconds")
        print(f"{'run':>4}{'petard in':>11}{'petard out':>12}{'qemu in':>10}{'qemu out':>10}")
        for run in range(1, args.runs + 1):
            results["petard"].append(measure(PetardGuest, guest, root, workdir, args))
            results["qemu"].append(measure(QemuGuest, guest, root, workdir, args))
            (pi, po), (qi, qo) = results["petard"][-1], results["qemu"][-1]
            print(f"{run:>4}{pi:>11.2f}{po:>12.2f}{qi:>10.2f}{qo:>10.2f}", flush=True)
        (pi, po), (qi, qo) = [[statistics.median(step) for step in zip(*runs)] for runs in results.values()]
        print(f"{'med':>4}{pi:>11.2f}{po:>12.2f}{qi:>10.2f}{qo:>10.2f}")
        print(f"ratio petard/qemu: inflate {pi / qi:.2f}x, deflate {po / qo:.2f}x")


if __name__ == "__main__":
    main()

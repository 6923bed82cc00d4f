"""Build and boot the emulated aarch64 KVM host (qemu-system-aarch64, virtualization=on).

The emulated host is Debian's arm64 kernel (the same one petard boots as its guest) with an
initramfs holding busybox, Debian's python3.11 and e2fsprogs, petard's pure-Python
dependencies and pytest as aarch64 wheels, petard itself, the example plugins installed from
wheels built here, and the guest artifacts petard boots inside it (also as a petard cache,
$PETARD_CACHE, for the tests that call `petard.guest`). Its /init
mounts the usual file systems, fails loudly (exit 99) when /dev/kvm is absent, runs one
command and powers off; the host reads the command's exit code from the console line
``PETARD-KVM-HOST-EXIT=<n>``.

Two archives are concatenated (the kernel unpacks both, later files win):
the *base* (Debian packages, wheels, guest artifacts, their .pyc; ~110 MB unpacked) is cached in
``<petard cache>/kvm-host/`` keyed by its recipe; the *overlay* (petard's sources, the
tests, assembled guest programs, the example plugins' wheels, the C benchmark loop, /init)
is rebuilt every run.

    image = build_initrd(command="python3.11 /opt/petard/tests/kvm/run_in_host.py")
    result = boot(image, gic_version=3)
    result.exit_code, result.console

Host tools: qemu-system-aarch64 (qemu-system-arm), dpkg-deb, pip (`pip download`, `pip wheel`),
mkfs.ext4 (e2fsprogs, for the cached rootfs guest),
aarch64-linux-gnu-as/ld (binutils-aarch64-linux-gnu) and, for the benchmark,
aarch64-linux-gnu-gcc (gcc-aarch64-linux-gnu).
"""

from __future__ import annotations

import compileall
import gzip
import hashlib
import json
import os
import py_compile
import re
import selectors
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

import petard.guest
from petard.guest import cpio
from petard.guest.apt import PrivateApt
from petard.guest.cache import MANIFEST_NAME, cache_dir, stderr_progress
from petard.guest.debs import extract_package
from petard.guest.rootfs import rootfs_artifacts

REPO = Path(__file__).resolve().parents[2]
TESTS_ROOT = REPO / "tests"
if str(TESTS_ROOT) not in sys.path:
    sys.path.insert(0, str(TESTS_ROOT))

from guestasm.assembler import assemble  # noqa: E402  (tests/ is not a package)

# What the emulated host runs: busybox, and python3.11 with the libraries that ctypes/mmap/
# fcntl, hashlib/ssl and pydantic-core (libgcc_s) load (see the nested-KVM notes, §3).
HOST_PACKAGES = (
    "busybox-static", "python3.11-minimal", "libpython3.11-minimal", "libpython3.11-stdlib",
    "libc6", "libgcc-s1", "zlib1g", "libexpat1", "libffi8", "libssl3",
    # e2fsprogs: mkfs.ext4 builds the virtio end-to-end tests' root images, debugfs reads
    # files back out of them (apt-get download resolves no dependencies: the libraries too).
    "e2fsprogs", "libext2fs2", "libcom-err2", "libss2", "libblkid1", "libuuid1",
)
PRUNED_PATHS = (
    "usr/share", "usr/lib/aarch64-linux-gnu/gconv", "usr/lib/python3.11/test",
    "usr/lib/python3.11/ensurepip", "usr/lib/python3.11/idlelib", "usr/lib/python3.11/tkinter",
    "usr/lib/python3.11/lib2to3", "usr/lib/python3.11/pydoc_data", "usr/lib/python3.11/turtledemo",
)
# petard's runtime dependencies minus the Unicorn backend's (not used on KVM).
NOT_NEEDED_ON_KVM = ("unicorn", "capstone")
# From the [test] extra: what the in-host pytest selections need (tests/kvm/pytest_in_host.py).
TEST_REQUIREMENTS_IN_HOST = ("pytest",)
WHEEL_PLATFORM = "manylinux2014_aarch64"
HOST_PYTHON_VERSION = "3.11"
BASE_FORMAT = 3             # bump when the base layout changes in a way the recipe cannot see
# Bytecode made here (x86) is valid there when both interpreters are 3.11 (one magic number per
# minor version); checked-hash .pyc files stay valid whatever the archive's file times. Without
# them every process in the emulated host compiles the stdlib, pydantic, flask and petard anew
# under TCG (Debian's python3.11 packages ship no .pyc: its postinst makes them).
PRECOMPILE = sys.version_info[:2] == tuple(int(part) for part in HOST_PYTHON_VERSION.split("."))
PYC_MODE = py_compile.PycInvalidationMode.CHECKED_HASH
GZIP_LEVEL = 1              # speed over size: the archive is built on every cold run

SITE_DIR = "opt/petard/site"          # PYTHONPATH inside the emulated host
PETARD_DIR = SITE_DIR + "/petard"
TESTS_DIR = "opt/petard/tests"
BENCHMARKS_DIR = "opt/petard/benchmarks"
GUEST_PROGRAMS_DIR = "opt/petard/guest-programs"
GUEST_DIR = "opt/guest"               # the L2 guest: kernel Image and initrd
GUEST_CACHE_DIR = "opt/petard-cache"  # $PETARD_CACHE inside: petard.guest finds its artifacts there
EXAMPLES_DIR = "opt/petard/examples"  # example plugins' tests (the plugins are installed wheels)
EXAMPLE_PLUGINS = ("pl061",)          # examples/<name>: built into a wheel, installed in SITE_DIR
TOOLS_DIR = "opt/petard/bin"          # cross-compiled helpers (the C benchmark loop)
PETARD_PACKAGES = ("__init__.py", "__main__.py", "devices.py", "api", "core", "backends", "plugins", "guest",
                   "testing")
# The pytest-level tests run in the emulated host, with the conftest files they rely on.
TEST_FILES = ("conftest.py", "petard_proc.py", "virtio/*.py", "e2e/__init__.py", "e2e/conftest.py",
              "e2e/test_vcpu_state.py", "guesttools/*.py")

EXIT_MARKER = "PETARD-KVM-HOST-EXIT="
NO_KVM_EXIT_CODE = 99
QEMU = "qemu-system-aarch64"
QEMU_MEMORY_MIB = 3072       # the nested guests (256 MiB each) and their drive images in tmpfs
HOST_CMDLINE = "console=ttyAMA0 panic=-1 quiet"
GIC_ENV = "PETARD_EXPECTED_GIC"


class HostBuildError(RuntimeError):
    pass


def work_dir() -> Path:
    return cache_dir() / "kvm-host"


def _say(message: str) -> None:
    stderr_progress(f"kvm-host: {message}")


# --- the cached base archive ----------------------------------------------------------------


def _requirement_name(requirement: str) -> str:
    return re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0].lower()


def wheel_requirements() -> list[str]:
    """petard's [project] dependencies (pyproject.toml), minus the Unicorn-only ones, plus
    pytest from its [test] extra."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    runtime = [requirement for requirement in project["dependencies"]
               if _requirement_name(requirement) not in NOT_NEEDED_ON_KVM]
    test = [requirement for requirement in project["optional-dependencies"]["test"]
            if _requirement_name(requirement) in TEST_REQUIREMENTS_IN_HOST]
    return runtime + test


def download_wheels(requirements: list[str], destination: Path) -> list[Path]:
    """aarch64 wheels for the emulated host's python3.11; cached by the requirement list."""
    key = hashlib.sha256(json.dumps(requirements).encode()).hexdigest()[:16]
    folder = destination / key
    manifest = folder / "wheels.json"
    if manifest.is_file():
        wheels = [folder / name for name in json.loads(manifest.read_text())]
        if all(wheel.is_file() for wheel in wheels):
            return wheels
    folder.mkdir(parents=True, exist_ok=True)
    _say(f"pip download {' '.join(requirements)} ({WHEEL_PLATFORM}, python {HOST_PYTHON_VERSION})")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
         "--platform", WHEEL_PLATFORM, "--only-binary=:all:", "--python-version", HOST_PYTHON_VERSION,
         "--implementation", "cp", "--dest", str(folder), *requirements],
        capture_output=True, text=True)
    if result.returncode != 0:
        raise HostBuildError(f"pip download failed:\n{result.stderr[-3000:]}")
    wheels = sorted(folder.glob("*.whl"))
    manifest.write_text(json.dumps([wheel.name for wheel in wheels]))
    return wheels


def _tree_entries(root: Path, prefix: str = "") -> list[cpio.CpioEntry]:
    """Archive entries for everything under `root` (parents first), owned by root."""
    entries = []
    for directory, subdirectories, files in os.walk(root):
        subdirectories.sort()
        relative = Path(directory).relative_to(root)
        if str(relative) != ".":
            entries.append(cpio.directory(f"{prefix}{relative}", 0o755))
        for name in sorted(files) + sorted(d for d in subdirectories if (Path(directory) / d).is_symlink()):
            path = Path(directory) / name
            member = f"{prefix}{(relative / name).as_posix()}".removeprefix("./")
            info = path.lstat()
            if stat.S_ISLNK(info.st_mode):
                entries.append(cpio.symlink(member, os.readlink(path)))
            elif stat.S_ISREG(info.st_mode):
                entries.append(cpio.regular_file(member, path.read_bytes(), 0o755 if info.st_mode & 0o111 else 0o644))
    return entries


def _with_parents(entries: list[cpio.CpioEntry]) -> list[cpio.CpioEntry]:
    """`entries` preceded by directory entries for every parent (the kernel's unpacker
    creates no missing directories)."""
    result, seen = [], set()
    for entry in entries:
        parts = entry.name.split("/")[:-1]
        for depth in range(1, len(parts) + 1):
            parent = "/".join(parts[:depth])
            if parent not in seen:
                seen.add(parent)
                result.append(cpio.directory(parent))
        if entry.is_dir:
            if entry.name in seen:
                continue
            seen.add(entry.name)
        result.append(entry)
    return result


def _write_archive(entries: list[cpio.CpioEntry], output: Path) -> None:
    entries = _with_parents(entries)
    temporary = output.with_name(output.name + ".tmp")
    temporary.write_bytes(gzip.compress(cpio.write_newc(entries), compresslevel=GZIP_LEVEL, mtime=0))
    temporary.replace(output)


def _precompile_tree(directory: Path, shown_as: str) -> None:
    """.pyc files beside the sources under `directory` (which the emulated host sees at `shown_as`)."""
    if PRECOMPILE:
        compileall.compile_dir(directory, ddir=shown_as, quiet=2, invalidation_mode=PYC_MODE)


def _with_bytecode(entries: list[cpio.CpioEntry]) -> list[cpio.CpioEntry]:
    """`entries` plus a __pycache__/<name>.cpython-311.pyc entry for each Python source."""
    if not PRECOMPILE:
        return entries
    result = list(entries)
    with tempfile.TemporaryDirectory(prefix="petard-pyc-") as tmp:
        for entry in entries:
            if not (entry.name.endswith(".py") and stat.S_ISREG(entry.mode)):
                continue
            source, compiled = Path(tmp) / "source.py", Path(tmp) / "source.pyc"
            source.write_bytes(entry.data)
            try:
                py_compile.compile(str(source), str(compiled), dfile=f"/{entry.name}", doraise=True,
                                   invalidation_mode=PYC_MODE)
            except py_compile.PyCompileError:
                continue          # the emulated host reports it when importing
            folder, _, file = entry.name.rpartition("/")
            cached = f"{folder}/__pycache__/{file.removesuffix('.py')}.{sys.implementation.cache_tag}.pyc"
            result.append(cpio.regular_file(cached.lstrip("/"), compiled.read_bytes()))
    return result


def _stage_guest_cache(stage: Path, guest: petard.guest.GuestArtifacts, rootfs_initrd: Path) -> None:
    """A petard cache for `petard.guest.artifacts()` and `rootfs_artifacts()` inside the
    emulated host: the manifest, the extracted modules and the module initramfs, with the
    kernel and busybox initrd as symlinks to the copies in GUEST_DIR. (The default root
    image is left out: `rootfs_artifacts()` builds it there with mkfs.ext4.)"""
    source = cache_dir()
    target = stage / GUEST_CACHE_DIR
    manifest = json.loads((source / MANIFEST_NAME).read_text())
    target.mkdir(parents=True)
    shutil.copyfile(source / MANIFEST_NAME, target / MANIFEST_NAME)
    for key, guest_copy in (("kernel", "Image"), ("initrd", "initrd.cpio.gz")):
        link = target / manifest[key]
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(f"/{GUEST_DIR}/{guest_copy}")
    for key in ("kernel_config", "busybox"):
        (target / manifest[key]).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source / manifest[key], target / manifest[key])
    modules = Path("modules") / guest.kernel_package
    shutil.copytree(source / modules, target / modules, symlinks=True)
    (target / "rootfs").mkdir()
    shutil.copyfile(rootfs_initrd, target / "rootfs" / rootfs_initrd.name)


def build_base() -> Path:
    """The cached base archive: Debian userland, wheels, the L2 guest kernel and initrd, and
    a petard cache holding them (plus the drive-booting guest's module initramfs)."""
    root = cache_dir()
    guest = petard.guest.artifacts()
    rootfs_guest = rootfs_artifacts()
    apt = PrivateApt(root / "apt", progress=_say)
    apt.ensure_lists()
    debs = apt.download(list(HOST_PACKAGES), root / "debs")
    wheels = download_wheels(wheel_requirements(), work_dir() / "wheels")
    recipe_text = json.dumps([BASE_FORMAT, [d.name for d in debs], [w.name for w in wheels],
                              guest.kernel.name, guest.initrd.name, rootfs_guest.initrd.name, PRUNED_PATHS])
    recipe = hashlib.sha256(recipe_text.encode()).hexdigest()[:16]
    output = work_dir() / f"base-{recipe}.cpio.gz"
    if output.is_file():
        return output
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="petard-kvm-host-") as tmp:
        stage = Path(tmp) / "root"
        stage.mkdir()
        for deb in debs:
            unpacked = extract_package(deb, Path(tmp) / deb.stem)
            shutil.copytree(unpacked, stage, symlinks=True, dirs_exist_ok=True)
        for pruned in PRUNED_PATHS:
            shutil.rmtree(stage / pruned, ignore_errors=True)
        _precompile_tree(stage / "usr/lib/python3.11", "/usr/lib/python3.11")
        site = stage / SITE_DIR
        site.mkdir(parents=True)
        for wheel in wheels:
            with zipfile.ZipFile(wheel) as archive:
                archive.extractall(site)
        _precompile_tree(site, f"/{SITE_DIR}")
        guest_dir = stage / GUEST_DIR
        guest_dir.mkdir(parents=True)
        shutil.copyfile(guest.kernel, guest_dir / "Image")
        shutil.copyfile(guest.initrd, guest_dir / "initrd.cpio.gz")
        _stage_guest_cache(stage, guest, rootfs_guest.initrd)
        entries = [cpio.directory(name) for name in ("dev", "proc", "sys", "tmp", "run")]
        entries.append(cpio.char_device("dev/console", 5, 1))
        entries += _tree_entries(stage)
        _write_archive(entries, output)
    _say(f"built {output} ({output.stat().st_size / 1e6:.1f} MB) in {time.monotonic() - started:.1f} s")
    return output


# --- the per-run overlay ------------------------------------------------------------------------


def init_script(command: str) -> str:
    return f"""#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
/bin/busybox mount -t devtmpfs devtmpfs /dev
/bin/busybox mount -t tmpfs tmpfs /tmp
/bin/busybox --install -s /bin
export PATH=/usr/bin:/bin:/usr/sbin:/sbin PYTHONPATH=/{SITE_DIR} PYTHONDONTWRITEBYTECODE=1 HOME=/tmp
export PETARD_CACHE=/{GUEST_CACHE_DIR}
export PETARD_GUEST_DIR=/{GUEST_DIR} PETARD_GUEST_PROGRAMS=/{GUEST_PROGRAMS_DIR} PETARD_TOOLS=/{TOOLS_DIR}
echo "kvm-host: $(uname -r), $(grep -c ^processor /proc/cpuinfo) cpu(s), uptime $(cut -d' ' -f1 /proc/uptime) s"
if [ -c /dev/kvm ]; then
    cd /opt/petard
    {command}
    rc=$?
else
    echo "kvm-host: FATAL: /dev/kvm is absent (was qemu started without virtualization=on?)"
    dmesg | grep -i kvm
    rc={NO_KVM_EXIT_CODE}
fi
echo "{EXIT_MARKER}$rc"
/bin/busybox poweroff -f
"""


def _source_entries() -> list[cpio.CpioEntry]:
    entries = []
    for name in PETARD_PACKAGES:
        path = REPO / name
        if path.is_file():
            entries.append(cpio.regular_file(f"{PETARD_DIR}/{name}", path.read_bytes()))
            continue
        for file in sorted(path.rglob("*.py")):
            if "__pycache__" not in file.parts:
                entries.append(cpio.regular_file(f"{PETARD_DIR}/{file.relative_to(REPO).as_posix()}",
                                                 file.read_bytes()))
    for file in sorted((TESTS_ROOT / "kvm").glob("*.py")):
        entries.append(cpio.regular_file(f"{TESTS_DIR}/kvm/{file.name}", file.read_bytes()))
    for pattern in TEST_FILES:
        for file in sorted(TESTS_ROOT.glob(pattern)):
            entries.append(cpio.regular_file(f"{TESTS_DIR}/{file.relative_to(TESTS_ROOT).as_posix()}",
                                             file.read_bytes()))
    for name in EXAMPLE_PLUGINS:
        for file in sorted((REPO / "examples" / name / "tests").glob("*.py")):
            entries.append(cpio.regular_file(f"{EXAMPLES_DIR}/{name}/tests/{file.name}", file.read_bytes()))
    for file in sorted((REPO / "benchmarks").glob("kvm_*")):
        entries.append(cpio.regular_file(f"{BENCHMARKS_DIR}/{file.name}", file.read_bytes()))
    return entries


def assemble_guest_programs() -> list[cpio.CpioEntry]:
    """The ioctl-level tests' guest programs (tests/kvm/guest_programs.py), assembled here
    because the emulated host has no assembler."""
    sys.path.insert(0, str(TESTS_ROOT / "kvm"))
    try:
        import guest_programs
    finally:
        sys.path.remove(str(TESTS_ROOT / "kvm"))
    entries = []
    for name, (base, source) in guest_programs.PROGRAMS.items():
        program = assemble(source, base)
        entries.append(cpio.regular_file(f"{GUEST_PROGRAMS_DIR}/{name}.bin", program.code))
    return entries


def example_plugin_wheels() -> list[cpio.CpioEntry]:
    """Each example plugin built into a wheel (`pip wheel`, from a copy of its folder so the
    repository gets no build output) and installed the way pip installs a pure-Python wheel:
    unpacked into SITE_DIR, its .dist-info (entry points included) beside its package."""
    entries = []
    with tempfile.TemporaryDirectory(prefix="petard-example-wheels-") as tmp:
        for name in EXAMPLE_PLUGINS:
            source = Path(tmp) / name
            shutil.copytree(REPO / "examples" / name, source,
                            ignore=shutil.ignore_patterns("*.egg-info", "build", "__pycache__", "tests"))
            result = subprocess.run(
                [sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check", "--no-deps",
                 "--wheel-dir", str(Path(tmp) / "wheels"), str(source)],
                capture_output=True, text=True)
            if result.returncode != 0:
                raise HostBuildError(f"pip wheel examples/{name} failed:\n{result.stderr[-3000:]}")
        for wheel in sorted((Path(tmp) / "wheels").glob("*.whl")):
            with zipfile.ZipFile(wheel) as archive:
                for member in archive.infolist():
                    if not member.is_dir():
                        entries.append(cpio.regular_file(f"{SITE_DIR}/{member.filename}", archive.read(member)))
    return entries


def cross_compile(source: Path, name: str) -> cpio.CpioEntry:
    """A static aarch64 binary built with Debian's gcc-aarch64-linux-gnu."""
    compiler = shutil.which("aarch64-linux-gnu-gcc")
    if compiler is None:
        raise HostBuildError("aarch64-linux-gnu-gcc not found: install gcc-aarch64-linux-gnu")
    with tempfile.TemporaryDirectory(prefix="petard-cc-") as tmp:
        output = Path(tmp) / name
        result = subprocess.run([compiler, "-O2", "-static", "-o", str(output), str(source)],
                                capture_output=True, text=True)
        if result.returncode != 0:
            raise HostBuildError(f"{compiler} {source} failed:\n{result.stderr}")
        return cpio.regular_file(f"{TOOLS_DIR}/{name}", output.read_bytes(), 0o755)


def guest_tools() -> list[cpio.CpioEntry]:
    """The tests' guest tools (tests/guesttools/*.c), cross-compiled here: the emulated host
    has no compiler, and `guesttools.guest_tool` finds them in $PETARD_TOOLS there."""
    import guesttools

    return [cross_compile(guesttools.SOURCES / f"{name}.c", name) for name in guesttools.tool_names()]


def build_initrd(command: str, output: Path, extra_entries: list[cpio.CpioEntry] = ()) -> Path:
    """base + overlay (sources, tests, guest programs and tools, example plugins,
    `extra_entries`, an /init running `command`)."""
    base = build_base()
    entries = (_with_bytecode(_source_entries() + example_plugin_wheels()) + assemble_guest_programs()
               + guest_tools() + list(extra_entries))
    entries.append(cpio.regular_file("init", init_script(command).encode(), 0o755))
    overlay = output.with_name(output.name + ".overlay")
    _write_archive(entries, overlay)
    with open(output, "wb") as combined:
        with open(base, "rb") as part:
            shutil.copyfileobj(part, combined)
        combined.write(overlay.read_bytes())
    overlay.unlink()
    return output


# --- booting it -------------------------------------------------------------------------------


@dataclass
class HostRun:
    exit_code: int | None          # the command's exit code, None if the marker never came
    console: str
    seconds: float
    qemu_returncode: int | None


def boot(initrd: Path, gic_version: int, timeout_s: float, console_log: Path | None = None,
         echo: bool = False, virtualization: bool = True) -> HostRun:
    """Run the emulated host once (one qemu at a time, 1 vCPU) and collect its console.
    Without `virtualization` its kernel starts at EL1 and has no /dev/kvm."""
    if shutil.which(QEMU) is None:
        raise HostBuildError(f"{QEMU} not found: install qemu-system-arm")
    kernel = petard.guest.artifacts().kernel
    cmdline = f"{HOST_CMDLINE} {GIC_ENV}={gic_version}"   # unknown key=value: init's environment
    machine = f"virt,virtualization={'on' if virtualization else 'off'},gic-version={gic_version}"
    command = [QEMU, "-M", machine,
               "-cpu", "max,pauth=off", "-smp", "1", "-m", str(QEMU_MEMORY_MIB),
               "-nographic", "-no-reboot", "-nodefaults", "-serial", "stdio",
               "-kernel", str(kernel), "-initrd", str(initrd), "-append", cmdline]
    started = time.monotonic()
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT)
    lines: list[str] = []
    assert process.stdout is not None
    deadline = started + timeout_s
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    buffer = b""
    timed_out = False
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            timed_out = True
            break
        if not selector.select(min(remaining, 1.0)):
            if process.poll() is not None:
                break
            continue
        chunk = os.read(process.stdout.fileno(), 65536)
        if not chunk:
            break
        buffer += chunk
        *complete, buffer = buffer.split(b"\n")
        for raw in complete:
            line = raw.decode(errors="replace").rstrip("\r")
            lines.append(line)
            if echo:
                print(line, flush=True)
    if timed_out:
        process.kill()
        lines.append(f"kvm-host: qemu killed after {timeout_s:.0f} s")
    returncode = process.wait()
    if buffer:
        lines.append(buffer.decode(errors="replace"))
    console = "\n".join(lines)
    if console_log is not None:
        console_log.write_text(console + "\n")
    exit_code = None
    for line in lines:
        if line.startswith(EXIT_MARKER):
            exit_code = int(line[len(EXIT_MARKER):].strip() or -1)
    return HostRun(exit_code, console, time.monotonic() - started, returncode)

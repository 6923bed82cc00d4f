"""Building petard's libunicorn: Unicorn's own PyPI source, four small edits, aarch64 only.

Why: Unicorn 2.1.4 calls an out-of-line helper (`helper_check_exit_request`) after every
guest load and store and at the entry of every translation block, so that a memory hook
asking for a stop ends emulation at once. petard installs no memory hook, yet the helper is
a quarter of the samples of a store-heavy guest loop (`../shared/notes/unicorn-speed.md` §4;
measured again on the virtio-blk write benchmark). The edits keep every stop petard relies
on (see `EDITS`) and drop the rest:

  * block entry checks the exit request inline (a load and a branch, as upstream QEMU does)
    and calls the helper only when an exit was requested;
  * loads and stores check only while a memory hook that can ask for a stop is installed;
  * a store to unmapped or read-only memory leaves at once, as a load already does, instead
    of relying on the check after it;
  * a Unicorn bug those checks used to hide is fixed: a stale "keep the PC as written" mark
    that made a later stop resume at an old PC.

The library is built once per host into the cache (`libunicorn.library_dir`), from the sdist
of the exact version the `unicorn` wheel pins, checked against its SHA-256. Only the aarch64
target is compiled (about 40 s on two cores). The wheel's Python binding loads it through
`LIBUNICORN_PATH` (see `libunicorn.select`).

    python -m petard.backends.unicorn.libunicorn_build [--force]
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from petard.core.archive import extract_all

from .libunicorn import LIBRARY_NAME, library_dir

UNICORN_VERSION = "2.1.4"
SDIST_NAME = f"unicorn-{UNICORN_VERSION}.tar.gz"
SDIST_SHA256 = "00567a70e323f749b419cd86bee4f9115beab7ebba32194581c090cbb7c59cff"
# What the build runs, by the Debian package that has it (QEMU's configure, run by Unicorn's
# CMake, needs pkg-config: without it config-host.h is never written).
BUILD_TOOLS = {"cmake": "cmake", "make": "make", "cc": "gcc", "pkg-config": "pkg-config"}
CMAKE_OPTIONS = ("-DCMAKE_BUILD_TYPE=Release", "-DUNICORN_BUILD_TESTS=off", "-DUNICORN_ARCH=aarch64")


class BuildError(RuntimeError):
    pass


@dataclass(frozen=True)
class Edit:
    """Replace `old` (found exactly `count` times; a regular expression if `regex`) by `new`
    in `path`, a file of the sdist's `src/` tree."""

    path: str
    old: str
    new: str
    count: int = 1
    regex: bool = False

    def apply(self, root: Path) -> None:
        file = root / self.path
        text = file.read_text()
        pattern = self.old if self.regex else re.escape(self.old)
        found = len(re.findall(pattern, text))
        if found != self.count:
            raise BuildError(f"{self.path}: expected {self.count} match(es) of {self.old!r}, found {found}")
        replacement = self.new if self.regex else self.new.replace("\\", "\\\\")
        file.write_text(re.sub(pattern, replacement, text))


_EXIT_CHECK_HELPER = "gen_helper_check_exit_request(tcg_ctx, puc, tmp);"

EDITS = (
    # Block entry: branch over the helper call unless an exit was requested (icount_decr
    # negative: what cpu_exit sets, and what upstream QEMU tests inline at every block).
    # The helper, when called, behaves as before, so every stop petard makes at a block
    # boundary (after an MSR, in the EL0 block hook) still lands on the same instruction.
    Edit("qemu/include/exec/gen-icount.h",
         "static inline void gen_tb_start(TCGContext *tcg_ctx, TranslationBlock *tb)\n{\n",
         "static inline void gen_tb_start(TCGContext *tcg_ctx, TranslationBlock *tb)\n{\n"
         "    /* petard: the exit-request helper only when an exit was requested */\n"
         "    TCGLabel *no_exit_requested = gen_new_label(tcg_ctx);\n"
         "    TCGv_i32 exit_count = tcg_temp_new_i32(tcg_ctx);\n"
         "    tcg_gen_ld_i32(tcg_ctx, exit_count, tcg_ctx->cpu_env,\n"
         "                   offsetof(ArchCPU, neg.icount_decr.u32) - offsetof(ArchCPU, env));\n"
         "    tcg_gen_brcondi_i32(tcg_ctx, TCG_COND_GE, exit_count, 0, no_exit_requested);\n"
         "    tcg_temp_free_i32(tcg_ctx, exit_count);\n"),
    Edit("qemu/include/exec/gen-icount.h",
         f"    {_EXIT_CHECK_HELPER}\n    tcg_temp_free_i32(tcg_ctx, tmp);\n    tcg_temp_free_ptr(tcg_ctx, puc);\n}}\n",
         f"    {_EXIT_CHECK_HELPER}\n    tcg_temp_free_i32(tcg_ctx, tmp);\n    tcg_temp_free_ptr(tcg_ctx, puc);\n"
         "    gen_set_label(tcg_ctx, no_exit_requested);\n}\n"),
    # Loads and stores: the check after each one only while a hook that runs on ordinary
    # accesses (and so may ask for a stop mid-block) is installed.
    Edit("qemu/tcg/tcg-op.c", "check_exit_request(tcg_ctx);", "check_exit_request_after_access(tcg_ctx);",
         count=6),
    Edit("qemu/tcg/tcg-op.c",
         "static void tcg_gen_req_mo(TCGContext *tcg_ctx, TCGBar type)\n",
         "/* petard: only memory hooks can ask for a stop in the middle of an access */\n"
         "static void check_exit_request_after_access(TCGContext *tcg_ctx)\n"
         "{\n"
         "    if (tcg_uc_has_hookmem(tcg_ctx)) {\n"
         "        check_exit_request(tcg_ctx);\n"
         "    }\n"
         "}\n\n"
         "static void tcg_gen_req_mo(TCGContext *tcg_ctx, TCGBar type)\n"),
    # A PC written from a hook outside a translation block (an exception hook) marks the
    # next exit "keep the PC as written", and nothing cleared that mark once emulation had
    # resumed from that PC: the next stop, however much later, skipped restoring the PC
    # and resumed at a stale one. Stock Unicorn stopped at the very next load or store,
    # close enough to the stale PC to mostly get away with it (it re-ran a few
    # instructions); without those checks the guest crashed. Clear the mark on resuming.
    Edit("qemu/softmmu/cpus.c",
         "                // reset stop_request\n                uc->stop_request = false;\n",
         "                // reset stop_request\n                uc->stop_request = false;\n"
         "                uc->skip_sync_pc_on_exit = false;   /* petard: the PC was used */\n"),
    # A store that failed (unmapped, read-only, out of memory) leaves the block at once, at
    # the store's own instruction, as the load helper already does; before, the check
    # after the store did it.
    Edit("qemu/accel/tcg/cputlb.c",
         r"(\n( +)cpu_exit\(uc->cpu\);\n)(\2return;)",
         r"\1\2if (uc->nested_level > 0 && !uc->cpu->stopped) {"
         r"\n\2    cpu_loop_exit_restore(uc->cpu, retaddr);   /* petard */\n\2}\n\3",
         count=4, regex=True),
)


def _download_sdist(into: Path) -> Path:
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
                    "--dest", str(into), f"unicorn=={UNICORN_VERSION}"], check=True)
    sdist = into / SDIST_NAME
    actual = hashlib.sha256(sdist.read_bytes()).hexdigest()
    if actual != SDIST_SHA256:
        raise BuildError(f"{SDIST_NAME}: SHA-256 {actual}, expected {SDIST_SHA256}")
    return sdist


def _extract_sources(sdist: Path, into: Path) -> Path:
    try:
        with tarfile.open(sdist) as archive:
            extract_all(archive, into)
    except tarfile.TarError as error:
        raise BuildError(f"{sdist.name}: {error}") from None
    return into / f"unicorn-{UNICORN_VERSION}" / "src"


def build(destination: Path, progress=print) -> Path:
    """Download, patch and compile; install the library as `destination`/LIBRARY_NAME."""
    binding = importlib.metadata.version("unicorn")
    if binding != UNICORN_VERSION:
        raise BuildError(f"the installed unicorn binding is {binding}; this recipe builds {UNICORN_VERSION}")
    missing = [f"{tool} (Debian package {package})"
               for tool, package in BUILD_TOOLS.items() if shutil.which(tool) is None]
    if missing:
        raise BuildError(f"building libunicorn needs {', '.join(missing)}: scripts/setup installs them")
    with tempfile.TemporaryDirectory(prefix="petard-libunicorn-") as scratch:
        scratch = Path(scratch)
        progress(f"downloading {SDIST_NAME}")
        sources = _extract_sources(_download_sdist(scratch), scratch)
        for edit in EDITS:
            edit.apply(sources)
        progress(f"compiling Unicorn {UNICORN_VERSION} (aarch64 only)")
        build_dir = sources / "build"
        jobs = str(os.cpu_count() or 1)
        for command in (["cmake", "-S", str(sources), "-B", str(build_dir), *CMAKE_OPTIONS],
                        ["cmake", "--build", str(build_dir), "--target", "unicorn", "-j", jobs]):
            result = subprocess.run(command, capture_output=True, text=True)
            if result.returncode != 0:
                raise BuildError(f"{' '.join(command[:2])} failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
        destination.mkdir(parents=True, exist_ok=True)
        staged = destination / f".{LIBRARY_NAME}.partial"
        shutil.copyfile(build_dir / LIBRARY_NAME, staged)
        staged.replace(destination / LIBRARY_NAME)
    for stale in destination.parent.iterdir():      # builds of earlier recipes
        if stale != destination:
            shutil.rmtree(stale, ignore_errors=True)
    return destination / LIBRARY_NAME


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m petard.backends.unicorn.libunicorn_build",
                                     description="Build petard's patched libunicorn into the cache.")
    parser.add_argument("--force", action="store_true", help="rebuild even if the cache has this build")
    args = parser.parse_args(argv)
    destination = library_dir()
    if (destination / LIBRARY_NAME).exists() and not args.force:
        return 0
    try:
        path = build(destination, progress=lambda message: print(f"libunicorn: {message}", flush=True))
    except (BuildError, subprocess.CalledProcessError) as error:
        print(f"libunicorn: {error}", file=sys.stderr)
        return 1
    print(f"libunicorn: built {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

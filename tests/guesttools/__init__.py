"""Small static aarch64 programs the tests run inside guests, built from the C sources here.

    from guesttools import guest_tool
    memhog = guest_tool("memhog")       # the path of the static aarch64 executable

Each is built once per version of its source into the cache, with Debian's
gcc-aarch64-linux-gnu (``.ci/apt-packages``). Inside the emulated KVM host, which has no
compiler, the nested builder ships every one of them prebuilt in ``$PETARD_TOOLS``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from petard.core.host_cache import cache_dir

SOURCES = Path(__file__).resolve().parent
CROSS_COMPILER = "aarch64-linux-gnu-gcc"
PREBUILT_ENV = "PETARD_TOOLS"
FLAGS = ("-O2", "-static", "-Wall", "-Werror")


class GuestToolError(RuntimeError):
    pass


def tool_names() -> list[str]:
    return sorted(path.stem for path in SOURCES.glob("*.c"))


def guest_tool(name: str) -> Path:
    """The executable of tool `name` (tests/guesttools/<name>.c)."""
    prebuilt = os.environ.get(PREBUILT_ENV)
    if prebuilt and (Path(prebuilt) / name).is_file():
        return Path(prebuilt) / name
    source = SOURCES / f"{name}.c"
    digest = hashlib.sha256(source.read_bytes() + " ".join(FLAGS).encode()).hexdigest()[:16]
    output = cache_dir() / "guest-tools" / f"{name}-{digest}"
    if not output.is_file():
        compile_tool(source, output)
    return output


def compile_tool(source: Path, output: Path) -> Path:
    compiler = shutil.which(CROSS_COMPILER)
    if compiler is None:
        raise GuestToolError(f"{CROSS_COMPILER} is needed (Debian package gcc-aarch64-linux-gnu)")
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="petard-guest-tool-") as tmp:
        staged = Path(tmp) / output.name
        result = subprocess.run([compiler, *FLAGS, "-o", str(staged), str(source)], capture_output=True, text=True)
        if result.returncode != 0:
            raise GuestToolError(f"{compiler} {source.name} failed:\n{result.stderr}")
        shutil.move(str(staged), output)
    return output

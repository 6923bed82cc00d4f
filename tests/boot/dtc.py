"""Running the real device-tree compiler tools (Debian package device-tree-compiler)."""

from __future__ import annotations

import subprocess


def decompile(blob: bytes) -> str:
    """``dtc -I dtb -O dts``: fails the test if dtc rejects the blob."""
    result = subprocess.run(["dtc", "-I", "dtb", "-O", "dts", "-q"], input=blob, capture_output=True, check=False)
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode()


def compile_dts(source: str) -> bytes:
    result = subprocess.run(["dtc", "-I", "dts", "-O", "dtb", "-q"], input=source.encode(), capture_output=True)
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout


def fdtget(path, node: str, prop: str, kind: str = "x") -> str:
    """``fdtget -t <kind>`` of one property, e.g. kind "x" for hex cells, "s" for strings."""
    result = subprocess.run(["fdtget", "-t", kind, str(path), node, prop], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def node_paths(dts: str) -> list[str]:
    """Node paths in the order dtc prints them."""
    paths, stack = [], []
    for line in dts.splitlines():
        text = line.strip()
        if text.endswith("{"):
            name = text[:-1].strip()
            stack.append("" if name == "/" else name)
            paths.append("/" + "/".join(part for part in stack if part))
        elif text == "};":
            stack.pop()
    return paths

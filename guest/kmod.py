"""Kernel modules for the guest initramfs: read a module's `.modinfo`, order a load list.

Debian's kernel package ships modules without `modules.dep` (depmod runs at install time),
so dependencies come from each module's ELF `.modinfo` section: ``depends=a,b`` (hard) and
``softdep=pre: x`` (loaded first when known). Soft dependencies name modules or aliases;
`SOFTDEP_PROVIDERS` maps the aliases petard's guest meets to the module providing them.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping
from pathlib import Path

ELF_MAGIC = b"\x7fELF"
ELF_CLASS_64 = 2
ELF_DATA_LSB = 1
MODINFO_SECTION = b".modinfo"

# Aliases named by soft dependencies -> the module that provides them.
SOFTDEP_PROVIDERS = {"crypto-crc32c": "crc32c_generic", "crc32c": "crc32c_generic"}

_ELF64_HEADER = struct.Struct("<16sHHIQQQIHHHHHH")
_ELF64_SECTION = struct.Struct("<IIQQQQIIQQ")


class ModuleError(ValueError):
    """A module file that is not a little-endian ELF64 object with a .modinfo section, or
    a dependency that is not available."""


def module_name(path: Path) -> str:
    """The module's name as the kernel knows it (``virtio-rng.ko`` is ``virtio_rng``)."""
    return path.name.split(".ko")[0].replace("-", "_")


def modinfo(data: bytes) -> dict[str, list[str]]:
    """The key=value strings of a module's ``.modinfo`` section (a key may repeat)."""
    if len(data) < _ELF64_HEADER.size or data[:4] != ELF_MAGIC or data[4] != ELF_CLASS_64 or data[5] != ELF_DATA_LSB:
        raise ModuleError("not a little-endian ELF64 file")
    header = _ELF64_HEADER.unpack_from(data)
    section_offset, section_size, section_count, names_index = header[6], header[11], header[12], header[13]
    sections = [_ELF64_SECTION.unpack_from(data, section_offset + i * section_size) for i in range(section_count)]
    names = sections[names_index]
    for section in sections:
        name_start = names[4] + section[0]
        name = data[name_start:data.index(b"\0", name_start)]
        if name == MODINFO_SECTION:
            raw = data[section[4]:section[4] + section[5]]
            info: dict[str, list[str]] = {}
            for entry in raw.split(b"\0"):
                key, sep, value = entry.decode(errors="replace").partition("=")
                if sep:
                    info.setdefault(key, []).append(value)
            return info
    raise ModuleError("no .modinfo section")


def dependencies(info: Mapping[str, list[str]]) -> list[str]:
    """Modules to load before this one: soft "pre" dependencies, then hard ones."""
    wanted: list[str] = []
    for softdep in info.get("softdep", []):
        words = softdep.split()
        if words and words[0] == "pre:":
            wanted += [SOFTDEP_PROVIDERS.get(word, word).replace("-", "_") for word in words[1:]]
    for depends in info.get("depends", []):
        wanted += [name.replace("-", "_") for name in depends.split(",") if name]
    return wanted


def load_order(roots: Iterable[str], available: Mapping[str, Path]) -> list[Path]:
    """The files to ``insmod``, dependencies first, for the modules named in ``roots``."""
    ordered: list[Path] = []
    done: set[str] = set()
    visiting: set[str] = set()

    def visit(name: str, wanted_by: str | None) -> None:
        if name in done:
            return
        if name in visiting:
            raise ModuleError(f"dependency loop through {name}")
        path = available.get(name)
        if path is None:
            raise ModuleError(f"module {name} (needed by {wanted_by or 'the guest'}) is not available")
        visiting.add(name)
        for dependency in dependencies(modinfo(path.read_bytes())):
            visit(dependency, name)
        visiting.discard(name)
        done.add(name)
        ordered.append(path)

    for root in roots:
        visit(root.replace("-", "_"), None)
    return ordered

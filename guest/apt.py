"""A private, arm64-only apt used to download Debian packages for the guest.

Everything apt keeps (package lists, the ``sources.list``, a status file, its
cache) lives in one directory of petard's cache, and every ``Dir::`` option
points there, so the host's apt state is neither read for packages nor touched,
and root is not needed. The mirrors come from the host's apt configuration
(its Debian entries, whatever release they name, are rewritten for
DEBIAN_RELEASE); without any, the public Debian mirror is used.

    apt = PrivateApt(cache / "apt")
    apt.ensure_lists()                      # apt-get update, once
    apt.kernel_package()                    # "linux-image-6.1.0-56-arm64", via linux-image-arm64
    apt.download(["busybox-static"], dest)  # apt-get download
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

DEBIAN_RELEASE = "bookworm"
GUEST_ARCHITECTURE = "arm64"
KERNEL_METAPACKAGE = "linux-image-arm64"
DEBIAN_KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
DEFAULT_MIRRORS = (
    ("http://deb.debian.org/debian", ""),
    ("http://deb.debian.org/debian", "-updates"),
    ("http://deb.debian.org/debian-security", "-security"),
)
HOST_SOURCES_LIST = Path("/etc/apt/sources.list")
HOST_SOURCES_PARTS = Path("/etc/apt/sources.list.d")
# Debian suite names a host entry may use; anything else (Ubuntu, vendor repos) is ignored.
DEBIAN_SUITES = {
    "buster", "bullseye", "bookworm", "trixie", "forky", "duke", "sid",
    "oldoldstable", "oldstable", "stable", "testing", "unstable",
}  # fmt: skip
SUITE_POCKETS = ("-security", "-updates")

Progress = Callable[[str], None]


class AptError(RuntimeError):
    """An apt command failed; the message carries its output."""


@dataclass(frozen=True)
class SourceEntry:
    """One ``deb`` line of the private sources.list."""

    uri: str
    suite: str
    components: tuple[str, ...] = ("main",)
    signed_by: str | None = None

    def line(self) -> str:
        options = f"arch={GUEST_ARCHITECTURE}"
        if self.signed_by:
            options += f" signed-by={self.signed_by}"
        return f"deb [{options}] {self.uri} {self.suite} {' '.join(self.components)}"


@dataclass(frozen=True)
class PackageFile:
    """What ``apt-get download --print-uris`` says about one package."""

    uri: str
    filename: str
    size: int
    checksum: str


# --- deriving the sources from the host ----------------------------------------------


def _one_line_entries(text: str) -> Iterable[tuple[list[str], list[str], list[str], dict[str, str]]]:
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        options: dict[str, str] = {}
        match = re.match(r"(deb(?:-src)?)\s+\[([^\]]*)\]\s+(.*)", line)
        if match:
            kind, option_text, rest = match.groups()
            for option in option_text.split():
                key, _, value = option.partition("=")
                options[key.lower()] = value
        else:
            kind, _, rest = line.partition(" ")
        words = rest.split()
        if len(words) >= 2:
            yield [kind], [words[0]], [words[1]], {"components": " ".join(words[2:]), **options}


def _deb822_entries(text: str) -> Iterable[tuple[list[str], list[str], list[str], dict[str, str]]]:
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        key = None
        for raw in stanza.splitlines():
            if raw.startswith("#"):
                continue
            if raw[:1].isspace() and key:
                fields[key] += "\n" + raw.strip()
                continue
            key, sep, value = raw.partition(":")
            if not sep:
                key = None
                continue
            key = key.strip().lower()
            fields[key] = value.strip()
        if fields.get("enabled", "yes").lower() == "no" or "uris" not in fields:
            continue
        yield (
            fields.get("types", "deb").split(),
            fields["uris"].split(),
            fields.get("suites", "").split(),
            {
                "components": fields.get("components", ""),
                "signed-by": fields.get("signed-by", ""),
                "arch": fields.get("architectures", ""),
            },
        )


def debian_sources_from_host(
    sources_list: Path = HOST_SOURCES_LIST,
    sources_parts: Path = HOST_SOURCES_PARTS,
    release: str = DEBIAN_RELEASE,
) -> list[SourceEntry]:
    """The host's Debian mirrors, as ``deb`` entries for ``release`` (main component only)."""
    texts: list[tuple[str, str]] = []
    if sources_list.is_file():
        texts.append(("list", sources_list.read_text(errors="replace")))
    if sources_parts.is_dir():
        for path in sorted(sources_parts.iterdir()):
            if path.suffix in (".list", ".sources") and path.is_file():
                texts.append((path.suffix[1:], path.read_text(errors="replace")))
    entries: list[SourceEntry] = []
    for kind, text in texts:
        parsed = _one_line_entries(text) if kind == "list" else _deb822_entries(text)
        for types, uris, suites, options in parsed:
            architectures = options.get("arch", "").replace(",", " ").split()
            if "deb" not in types or (architectures and GUEST_ARCHITECTURE not in architectures):
                continue
            if "main" not in options.get("components", "").split():
                continue
            signed_by = options.get("signed-by") or None
            if signed_by and "\n" in signed_by:  # an inline key block: fall back to Debian's keyring
                signed_by = str(DEBIAN_KEYRING)
            for suite in suites:
                pocket = next((p for p in SUITE_POCKETS if suite.endswith(p)), "")
                if suite[: len(suite) - len(pocket)] not in DEBIAN_SUITES:
                    continue
                for uri in uris:
                    entry = SourceEntry(uri.rstrip("/"), release + pocket, signed_by=signed_by)
                    if entry not in entries:
                        entries.append(entry)
    return entries


def default_sources(release: str = DEBIAN_RELEASE) -> list[SourceEntry]:
    if not DEBIAN_KEYRING.is_file():
        raise AptError(
            f"no Debian entries in the host's apt sources and no {DEBIAN_KEYRING}: "
            "install the debian-archive-keyring package"
        )
    return [SourceEntry(uri, release + pocket, signed_by=str(DEBIAN_KEYRING)) for uri, pocket in DEFAULT_MIRRORS]


# --- the private apt -----------------------------------------------------------------


class PrivateApt:
    """apt-get / apt-cache confined to ``state_dir`` and the arm64 architecture."""

    def __init__(self, state_dir: Path, sources: Sequence[SourceEntry] | None = None, progress: Progress | None = None):
        self.state_dir = Path(state_dir)
        self.progress = progress or (lambda message: None)
        self._sources = list(sources) if sources is not None else None

    @property
    def sources_list(self) -> Path:
        return self.state_dir / "sources.list"

    def options(self) -> list[str]:
        d = self.state_dir
        settings = {
            "APT::Architecture": GUEST_ARCHITECTURE,
            "APT::Architectures": GUEST_ARCHITECTURE,
            "Dir::State": d / "state",
            "Dir::State::Lists": d / "state/lists",
            "Dir::State::status": d / "state/status",
            "Dir::State::extended_states": d / "state/extended_states",
            "Dir::Cache": d / "cache",
            "Dir::Cache::archives": d / "cache/archives",
            "Dir::Etc::SourceList": self.sources_list,
            "Dir::Etc::SourceParts": d / "sources.list.d",
            "Dir::Etc::Preferences": d / "preferences",
            "Dir::Etc::PreferencesParts": d / "preferences.d",
            "APT::Get::List-Cleanup": "false",
            "Acquire::Languages": "none",
        }
        if os.geteuid() == 0:
            # apt would hand downloads to the _apt user, who cannot write into a private cache.
            settings["APT::Sandbox::User"] = "root"
        return [arg for key, value in settings.items() for arg in ("-o", f"{key}={value}")]

    def _prepare(self) -> None:
        d = self.state_dir
        for sub in ("state/lists/partial", "cache/archives/partial", "sources.list.d", "preferences.d"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        (d / "state/status").touch()
        sources = self._sources
        if sources is None:
            sources = debian_sources_from_host() or default_sources()
        text = "".join(entry.line() + "\n" for entry in sources)
        if not self.sources_list.is_file() or self.sources_list.read_text() != text:
            self.sources_list.write_text(text)
            for stale in (d / "state/lists").glob("*_Packages*"):
                stale.unlink()

    def _run(self, tool: str, args: Sequence[str], cwd: Path | None = None, stream: bool = False) -> str:
        command = [tool, *self.options(), *args]
        process = subprocess.Popen(
            command,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "LC_ALL": "C", "DEBIAN_FRONTEND": "noninteractive"},
        )
        lines = []
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            if stream and line.strip():
                self.progress(line.rstrip())
        if process.wait() != 0:
            raise AptError(
                f"{tool} {' '.join(shlex.quote(a) for a in args)} failed (exit {process.returncode}):\n"
                + "".join(lines[-20:])
            )
        return "".join(lines)

    def has_lists(self) -> bool:
        return any((self.state_dir / "state/lists").glob("*_Packages*"))

    def update(self) -> None:
        self._prepare()
        self.progress(f"apt-get update ({DEBIAN_RELEASE}, {GUEST_ARCHITECTURE}) into {self.state_dir}")
        self._run("apt-get", ["-q", "update"], stream=True)

    def ensure_lists(self, refresh: bool = False) -> None:
        self._prepare()
        if refresh or not self.has_lists():
            self.update()

    def show(self, package: str) -> dict[str, str]:
        """The candidate version's control fields (``apt-cache show --no-all-versions``)."""
        text = self._run("apt-cache", ["show", "--no-all-versions", package])
        fields: dict[str, str] = {}
        key = None
        for line in text.splitlines():
            if not line.strip():
                if fields:
                    break
                continue
            if line[:1].isspace() and key:
                fields[key] += "\n" + line.strip()
            else:
                key, _, value = line.partition(":")
                fields[key] = value.strip()
        if not fields:
            raise AptError(f"apt-cache knows no package {package!r}")
        return fields

    def kernel_package(self, metapackage: str = KERNEL_METAPACKAGE) -> str:
        """The ABI-specific kernel package the metapackage depends on (never hard-coded)."""
        depends = self.show(metapackage).get("Depends", "")
        for clause in depends.split(","):
            for alternative in clause.split("|"):
                name = alternative.strip().split(" ", 1)[0]
                if name.startswith("linux-image-") and name != metapackage:
                    return name
        raise AptError(f"{metapackage} depends on no linux-image package: {depends!r}")

    def package_files(self, packages: Sequence[str]) -> list[PackageFile]:
        """Where each package would come from and the file name ``apt-get download`` gives it,
        in the order of ``packages``."""
        scratch = self.state_dir / "print-uris"
        scratch.mkdir(exist_ok=True)
        text = self._run("apt-get", ["download", "--print-uris", *packages], cwd=scratch)
        files = []
        for line in text.splitlines():
            match = re.match(r"'([^']+)' (\S+) (\d+) (\S+)", line)
            if match:
                uri, filename, size, checksum = match.groups()
                files.append(PackageFile(uri, filename, int(size), checksum))
        by_package = {file.filename.split("_", 1)[0]: file for file in files}
        missing = [package for package in packages if package not in by_package]
        if missing:
            raise AptError(f"apt-get could not locate {missing}:\n{text}")
        return [by_package[package] for package in packages]

    def download(self, packages: Sequence[str], destination: Path) -> list[Path]:
        """``apt-get download`` into ``destination``; files already there (right size) are kept."""
        destination.mkdir(parents=True, exist_ok=True)
        files = self.package_files(packages)
        missing = [
            package
            for package, file in zip(packages, files)
            if not ((destination / file.filename).is_file() and (destination / file.filename).stat().st_size == file.size)
        ]
        if missing:
            total = sum(f.size for p, f in zip(packages, files) if p in missing)
            self.progress(f"downloading {', '.join(missing)} ({total / 1e6:.1f} MB)")
            self._run("apt-get", ["download", *missing], cwd=destination, stream=True)
        return [destination / file.filename for file in files]

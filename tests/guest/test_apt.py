"""The private arm64 apt: sources derived from host-style configs, state confined to its directory."""

from __future__ import annotations

import os

from petard.guest.apt import DEBIAN_KEYRING, PrivateApt, SourceEntry, debian_sources_from_host

DEB822 = """\
Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://deb.debian.org/debian
Suites: trixie trixie-updates
Components: main contrib
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: trixie-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: https://deb.nodesource.com/node_20.x
Suites: nodistro
Components: main
Architectures: amd64

Types: deb
URIs: http://mirror.example/debian
Suites: bookworm
Components: main
Architectures: amd64
"""

ONE_LINE = """\
# a comment
deb http://ftp.fr.debian.org/debian bookworm main non-free
deb-src http://ftp.fr.debian.org/debian bookworm main
deb [signed-by=/etc/keys/x.gpg arch=amd64,arm64] http://ftp.fr.debian.org/debian bookworm-backports main
deb http://archive.ubuntu.com/ubuntu jammy main
deb https://packages.cloud.google.com/apt cloud-sdk-bookworm main
"""


def test_host_debian_entries_are_rewritten_for_bookworm(tmp_path):
    parts = tmp_path / "sources.list.d"
    parts.mkdir()
    (parts / "debian.sources").write_text(DEB822)
    (parts / "disabled.list.save").write_text("deb http://ignored.example/debian bookworm main\n")
    (tmp_path / "sources.list").write_text(ONE_LINE)
    entries = debian_sources_from_host(tmp_path / "sources.list", parts)
    key = str(DEBIAN_KEYRING)
    assert entries == [
        SourceEntry("http://ftp.fr.debian.org/debian", "bookworm"),
        SourceEntry("http://deb.debian.org/debian", "bookworm", signed_by=key),
        SourceEntry("http://deb.debian.org/debian", "bookworm-updates", signed_by=key),
        SourceEntry("http://deb.debian.org/debian-security", "bookworm-security", signed_by=key),
    ]
    assert entries[1].line() == f"deb [arch=arm64 signed-by={key}] http://deb.debian.org/debian bookworm main"


def test_every_apt_directory_points_into_the_private_state(tmp_path):
    options = PrivateApt(tmp_path / "apt").options()
    settings = dict(options[i + 1].split("=", 1) for i in range(0, len(options), 2))
    assert settings["APT::Architecture"] == settings["APT::Architectures"] == "arm64"
    for key in ("Dir::State", "Dir::State::Lists", "Dir::State::status", "Dir::Cache", "Dir::Cache::archives",
                "Dir::Etc::SourceList", "Dir::Etc::SourceParts", "Dir::Etc::Preferences", "Dir::Etc::PreferencesParts"):  # fmt: skip
        assert settings[key].startswith(str(tmp_path / "apt")), key


def test_update_and_resolution_leave_the_host_apt_state_alone(tmp_path):
    """A real `apt-get update` into a fresh private directory (network to Debian needed)."""
    host_lists = "/var/lib/apt/lists"
    before = sorted((entry.name, entry.stat().st_mtime_ns) for entry in os.scandir(host_lists))
    apt = PrivateApt(tmp_path / "apt")
    apt.ensure_lists()
    kernel = apt.kernel_package()
    assert kernel.startswith("linux-image-") and kernel.endswith("-arm64") and kernel != "linux-image-arm64"
    assert any(name.endswith("binary-arm64_Packages.lz4") or "binary-arm64_Packages" in name
               for name in os.listdir(tmp_path / "apt/state/lists"))  # fmt: skip
    files = apt.package_files(["busybox-static", kernel])
    assert files[0].filename.startswith("busybox-static_") and files[0].filename.endswith("_arm64.deb")
    assert files[1].filename.startswith(kernel + "_") and files[1].size > 10_000_000
    after = sorted((entry.name, entry.stat().st_mtime_ns) for entry in os.scandir(host_lists))
    assert before == after

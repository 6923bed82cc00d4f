"""Fixtures for the plugin tests: tests/ on sys.path for the shared helpers (guestasm, the
petard process driver)."""

import sys
from pathlib import Path

TESTS_ROOT = Path(__file__).resolve().parent.parent
for helper_dir in (TESTS_ROOT, TESTS_ROOT / "api", TESTS_ROOT / "plugins"):
    if str(helper_dir) not in sys.path:
        sys.path.insert(0, str(helper_dir))


import importlib  # noqa: E402
import importlib.metadata  # noqa: E402
import subprocess  # noqa: E402
import textwrap  # noqa: E402

import pytest  # noqa: E402

REPO_ROOT = TESTS_ROOT.parent
EXAMPLE_PL061 = REPO_ROOT / "examples" / "pl061"
EXAMPLE_DISTRIBUTION = "petard-pl061"


def write_distribution(directory: Path, dist_name: str, ep_name: str, module: str, source: str,
                       version: str = "1.2.3") -> None:
    """A throwaway installed distribution in `directory` (put it on sys.path / PYTHONPATH):
    module `module` with `source`, registered as entry point `ep_name` of group petard."""
    (directory / f"{module}.py").write_text(textwrap.dedent(source))
    # The directory name must escape '-' (importlib.metadata splits the name off at the first one).
    info = directory / f"{dist_name.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist_name}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[petard]\n{ep_name} = {module}\n")


@pytest.fixture(scope="session")
def pl061_installed():
    """The worked example installed as its own package (pip install -e examples/pl061),
    as a device author's users would; installed here when the environment lacks it."""
    try:
        importlib.metadata.distribution(EXAMPLE_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "-e", str(EXAMPLE_PL061)],
                       check=True, timeout=600)
        importlib.invalidate_caches()
    return EXAMPLE_PL061


@pytest.fixture(scope="session")
def guest():
    """Debian's arm64 kernel and the busybox initramfs (fetched into the cache on first use)."""
    from petard.guest import artifacts

    return artifacts()

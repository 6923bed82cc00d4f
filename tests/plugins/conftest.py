"""Fixtures for the plugin tests: tests/ on sys.path for the shared helpers (guestasm, the
petard process driver)."""

import sys
from pathlib import Path

TESTS_ROOT = Path(__file__).resolve().parent.parent
for helper_dir in (TESTS_ROOT, TESTS_ROOT / "plugins"):
    if str(helper_dir) not in sys.path:
        sys.path.insert(0, str(helper_dir))


import importlib  # noqa: E402
import importlib.metadata  # noqa: E402
import subprocess  # noqa: E402

import pytest  # noqa: E402

REPO_ROOT = TESTS_ROOT.parent
EXAMPLE_PL061 = REPO_ROOT / "examples" / "pl061"
EXAMPLE_DISTRIBUTION = "petard-pl061"


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

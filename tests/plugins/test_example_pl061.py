"""The worked example's own test suite (examples/pl061/tests), run as its author would run it:
against the installed petard-pl061 package, with petard's test kit from the pytest11 entry
point. Register level on the bench, then the Debian guest driving the pins through sysfs."""

from __future__ import annotations

import subprocess
import sys


def test_the_example_suite_passes(pl061_installed):
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
                            cwd=pl061_installed, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "14 passed" in result.stdout

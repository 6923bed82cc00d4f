"""Run the pytest-level end-to-end tests on KVM inside the emulated host, counting skips as failures.

    python3.11 pytest_in_host.py [selection ...]        (cwd: /opt/petard, as /init sets it)

Each selection runs in its own ``python3.11 -m pytest`` (one KVM VM set-up per process family,
as petard itself runs) and must run at least one test with no failure, error or skip; the
counts come from pytest's JUnit XML report. The selections:

* ``virtio-e2e``: tests/virtio/test_e2e.py, KVM parameter only (the emulated host carries no
  Unicorn): rootfs-drive boot with a file written, synced and read back with debugfs,
  /dev/vdb, a read-only drive, /dev/hwrng; and synced data surviving kill -9 with PATCH
  /drives swapping a backing file. Two guest boots.
* ``vcpu-state``: tests/e2e/test_vcpu_state.py, KVM parameters only: the neutral machine
  state of a Debian guest with 1 and 2 vCPUs agrees with what Linux reports, loads back
  exactly, and the guest goes on on a fresh VM. Two guest boots.
* ``balloon``: tests/virtio/test_balloon_e2e.py, KVM parameters only: inflating and
  deflating, statistics, deflate-on-OOM both ways, free page reporting and hinting. Four
  guest boots.
* ``pl061``: the example plugin's tests (examples/pl061/tests), with the plugin installed from
  its wheel and ``PETARD_TEST_BACKEND=kvm``: register-level tests and two guest boots.

In the emulated host petard is on PYTHONPATH, not pip-installed, so its pytest plugin (the
``pytest11`` entry point of an installed petard) is named with ``-p`` there.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from importlib.metadata import entry_points

PYTEST_OPTIONS = ("-p", "no:cacheprovider", "-v", "-rA")
PETARD_PYTEST_PLUGIN = "petard.testing.pytest_plugin"
SELECTIONS: dict[str, tuple[tuple[str, ...], dict[str, str]]] = {
    "virtio-e2e": (("tests/virtio/test_e2e.py", "-k", "kvm"), {}),
    "vcpu-state": (("tests/e2e/test_vcpu_state.py", "-k", "kvm"), {}),
    "balloon": (("tests/virtio/test_balloon_e2e.py", "-k", "kvm"), {}),
    "pl061": (("examples/pl061/tests",), {"PETARD_TEST_BACKEND": "kvm"}),
}
COUNTED = ("tests", "failures", "errors", "skipped")


def junit_counts(report_path: str) -> dict[str, int]:
    root = ElementTree.parse(report_path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    return {key: sum(int(suite.get(key, 0)) for suite in suites) for key in COUNTED}


def petard_plugin_options() -> tuple[str, ...]:
    installed = any(entry.value == PETARD_PYTEST_PLUGIN for entry in entry_points(group="pytest11"))
    return () if installed else ("-p", PETARD_PYTEST_PLUGIN)


def run_selection(name: str) -> bool:
    arguments, environment = SELECTIONS[name]
    with tempfile.TemporaryDirectory(prefix="pytest-in-host-") as tmp:
        report = os.path.join(tmp, "junit.xml")
        started = time.monotonic()
        code = subprocess.call([sys.executable, "-m", "pytest", *PYTEST_OPTIONS, *petard_plugin_options(),
                                f"--junitxml={report}", *arguments],
                               env={**os.environ, **environment})
        seconds = time.monotonic() - started
        counts = junit_counts(report) if os.path.exists(report) else None
    if counts is None:
        print(f"pytest-in-host {name}: no report (pytest exit {code})", flush=True)
        return False
    ok = code == 0 and counts["tests"] > 0 and counts["failures"] == counts["errors"] == counts["skipped"] == 0
    if counts["skipped"]:
        print(f"pytest-in-host {name}: SKIPS COUNTED AS FAILURES ({counts['skipped']})", flush=True)
    print(f"pytest-in-host {name}: {'OK' if ok else 'FAILED'} in {seconds:.1f} s: ran {counts['tests']}, "
          f"failures {counts['failures']}, errors {counts['errors']}, skipped {counts['skipped']} "
          f"(pytest exit {code})", flush=True)
    return ok


def main(names: list[str]) -> int:
    names = names or list(SELECTIONS)
    failed = [name for name in names if not run_selection(name)]
    print(f"pytest-in-host: {len(names) - len(failed)} of {len(names)} selections passed"
          + (f"; failed: {', '.join(failed)}" if failed else ""), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

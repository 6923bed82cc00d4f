"""Run the KVM test suite inside the emulated aarch64 host, where it must not skip.

    python3.11 run_in_host.py [test_module.py ...]

Without arguments it then runs the pytest-level end-to-end selections on KVM
(pytest_in_host.py: virtio end to end, the PL061 example plugin), also skips-as-failures.

Each test module runs in a fresh interpreter, as petard runs one VM per process (and
because in the emulated host, VMs created after others in one process were seen reading
stale memory: see kvm_testing). stdlib `unittest` on purpose: the emulated host carries
Debian's python3.11 and petard's runtime dependencies only, and these tests need nothing
else. A skip counts as a failure here (a skip means KVM was not really exercised). Exit
code 0 only when every module ran tests and all passed.
"""

import os
import subprocess
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(os.path.dirname(HERE))   # /opt/petard: the pytest selections' paths start there


def run_module(module: str) -> int:
    sys.path.insert(0, HERE)
    suite = unittest.defaultTestLoader.loadTestsFromName(module)
    result = unittest.TextTestRunner(verbosity=2, stream=sys.stdout).run(suite)
    for test, reason in result.skipped:
        print(f"SKIP COUNTED AS FAILURE: {test}: {reason}")
    ok = result.wasSuccessful() and not result.skipped and result.testsRun > 0
    print(f"kvm-tests {module}: ran {result.testsRun}, failures {len(result.failures)}, "
          f"errors {len(result.errors)}, skipped {len(result.skipped)}", flush=True)
    return 0 if ok else 1


def main(arguments: list[str]) -> int:
    if arguments[:1] == ["--module"]:
        return run_module(arguments[1])
    files = arguments or sorted(name for name in os.listdir(HERE) if name.startswith("test_") and name.endswith(".py"))
    failed = []
    for name in files:
        started = time.monotonic()
        code = subprocess.call([sys.executable, os.path.abspath(__file__), "--module", name.removesuffix(".py")],
                               cwd=HERE)
        print(f"kvm-tests {name}: {'OK' if code == 0 else 'FAILED'} in {time.monotonic() - started:.1f} s", flush=True)
        if code != 0:
            failed.append(name)
    print(f"kvm-tests: {len(files) - len(failed)} of {len(files)} modules passed"
          + (f"; failed: {', '.join(failed)}" if failed else ""), flush=True)
    pytest_failed = False
    if not arguments:
        pytest_failed = subprocess.call([sys.executable, os.path.join(HERE, "pytest_in_host.py")], cwd=REPO_ROOT) != 0
    return 1 if failed or not files or pytest_failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Makes the shared test helpers (tests/guestasm) importable; no package __init__ here,
because a package named `unicorn` would shadow the real Unicorn module."""

import sys
from pathlib import Path

TESTS_ROOT = str(Path(__file__).resolve().parent.parent)
if TESTS_ROOT not in sys.path:
    sys.path.insert(0, TESTS_ROOT)

"""Makes tests/ (guestasm) and this folder importable; tests/ is not a package."""

import sys
from pathlib import Path

for path in (Path(__file__).resolve().parent, Path(__file__).resolve().parent.parent):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

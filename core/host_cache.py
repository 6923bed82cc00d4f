"""Where petard keeps what it downloads or builds on this host, outside git: guest artifacts
(petard.guest.cache) and the patched Unicorn library (petard.backends.unicorn.libunicorn).

``$PETARD_CACHE`` if set, else ``~/.cache/petard``.
"""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "PETARD_CACHE"


def cache_dir() -> Path:
    configured = os.environ.get(CACHE_ENV)
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "petard"

"""Which libunicorn the Unicorn backend runs on: petard's patched build when this host has it
(libunicorn_build.py says what the patch changes and why), else the `unicorn` wheel's own.

The wheel's Python binding picks its library once, when `unicorn` is first imported, from
`LIBUNICORN_PATH`; `select()` sets that variable first. It runs when this package is
imported, so importing any petard Unicorn module before `unicorn` itself is enough.
`PETARD_UNICORN_PATCHED=0` keeps the wheel's library; a `LIBUNICORN_PATH` set by the user is
left alone.
"""

from __future__ import annotations

import hashlib
import logging
import os
from functools import lru_cache
from pathlib import Path

from petard.core.host_cache import cache_dir

log = logging.getLogger(__name__)

DISABLE_VARIABLE = "PETARD_UNICORN_PATCHED"
BINDING_VARIABLE = "LIBUNICORN_PATH"
LIBRARY_NAME = "libunicorn.so.2"
_RECIPE = Path(__file__).with_name("libunicorn_build.py")


def library_dir() -> Path:
    """Where this version of the build recipe puts its library: any change to the recipe
    (version, edits, options) names a new directory, so a stale build is never loaded."""
    recipe = hashlib.sha256(_RECIPE.read_bytes()).hexdigest()[:16]
    return cache_dir() / "libunicorn" / recipe


def patched_library() -> Path | None:
    """The patched library if this host has built it."""
    path = library_dir() / LIBRARY_NAME
    return path if path.is_file() else None


def select() -> None:
    if os.environ.get(DISABLE_VARIABLE) == "0" or BINDING_VARIABLE in os.environ:
        return
    path = patched_library()
    if path is not None:
        os.environ[BINDING_VARIABLE] = str(path.parent)


def loaded_library() -> Path:
    """The file the binding actually loaded (imports `unicorn`)."""
    from unicorn.unicorn_py3 import unicorn as binding

    return Path(binding.uclib._name).resolve()


def running_patched() -> bool:
    path = patched_library()
    return path is not None and loaded_library() == path.resolve()


@lru_cache(maxsize=1)
def warn_unless_patched() -> None:
    """Once per process: say so when guests run on the wheel's (slower) library."""
    if not running_patched() and os.environ.get(DISABLE_VARIABLE) != "0":
        log.warning("Unicorn runs on %s, not on petard's build (slower guests); build it with: "
                    "python -m petard.backends.unicorn.libunicorn_build", loaded_library())

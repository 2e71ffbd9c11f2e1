"""Memory of the site's long-running processes: what their forks share, and what malloc keeps.

The web server and the task cluster each load the site once and fork their workers from it
(``monitorsite/serve.py``, ``manage.py qcluster``): a forked process shares its parent's pages
until either writes to one. Two things kept those pages from staying shared or small
(measured with ``bench/footprint.py``, docs/benchmarks.md):

- Python's cyclic garbage collector writes into every object it examines, so a collection in a
  child copied the pages of the parent's objects it walked. ``share_with_forks`` moves what is
  loaded before the fork out of the collector's reach (``gc.freeze``); these objects live as long
  as the process anyway.
- glibc gives each thread that allocates an arena of its own (up to eight per core), and an
  arena keeps what it once held. ``limit_malloc_arenas`` caps them at two per process (or at the
  operator's ``MALLOC_ARENA_MAX``): a web process's threads mostly wait on the database or the
  socket, not on malloc.
"""

from __future__ import annotations

import ctypes
import gc
import os

# mallopt's parameter for the number of arenas (glibc's malloc.h).
M_ARENA_MAX = -8
MALLOC_ARENAS = 2


def limit_malloc_arenas(default: int = MALLOC_ARENAS) -> bool:
    """At most ``MALLOC_ARENA_MAX`` (else ``default``) malloc arenas in this process and the ones it
    forks; whether it was set.

    Called before the process starts threads, once the ``.env`` file is read: glibc reads
    ``MALLOC_ARENA_MAX`` itself only from the environment the process started with. Nothing changes
    with a C library without ``mallopt`` (musl, macOS).
    """
    try:
        arenas = int(os.environ.get("MALLOC_ARENA_MAX") or default)
    except ValueError:
        arenas = default
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return mallopt(M_ARENA_MAX, max(1, arenas)) == 1


def share_with_forks() -> None:
    """Just before forking: what is loaded now stays shared with the children (see above)."""
    gc.collect()
    gc.freeze()

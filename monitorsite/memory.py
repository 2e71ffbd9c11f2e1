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
  socket, not on malloc. It also fixes the size from which a block gets pages of its own (and
  gives them back when freed), which glibc otherwise raises as large blocks are freed.
"""

from __future__ import annotations

import ctypes
import gc
import os

# mallopt's parameters (glibc's malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
MALLOC_ARENAS = 2
# Blocks from this size on get pages of their own, returned when freed; and at most this much free
# memory stays at the top of a heap. glibc's default starts there but raises the threshold to the
# largest block freed so far (up to 32 MiB): after a few 1,000-trade requests every body and
# response buffer came from the heap and stayed there (~6 MiB over the deployment).
MALLOC_THRESHOLD_BYTES = 128 * 1024


def limit_malloc_arenas(default: int = MALLOC_ARENAS) -> bool:
    """At most ``MALLOC_ARENA_MAX`` (else ``default``) malloc arenas in this process and the ones it
    forks, and fixed mmap and trim thresholds (``MALLOC_THRESHOLD_BYTES``); whether they were set.

    Called before the process starts threads, once the ``.env`` file is read: glibc reads
    ``MALLOC_ARENA_MAX``, ``MALLOC_MMAP_THRESHOLD_`` and ``MALLOC_TRIM_THRESHOLD_`` itself only from
    the environment the process started with; an operator's value wins. Nothing changes with a C
    library without ``mallopt`` (musl, macOS).
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    ok = True
    for parameter, variable, fallback in (
        (M_ARENA_MAX, "MALLOC_ARENA_MAX", default),
        (M_MMAP_THRESHOLD, "MALLOC_MMAP_THRESHOLD_", MALLOC_THRESHOLD_BYTES),
        (M_TRIM_THRESHOLD, "MALLOC_TRIM_THRESHOLD_", MALLOC_THRESHOLD_BYTES),
    ):
        try:
            value = int(os.environ.get(variable) or fallback)
        except ValueError:
            value = fallback
        ok &= mallopt(parameter, max(1, value)) == 1
    return ok


def share_with_forks() -> None:
    """Just before forking: what is loaded now stays shared with the children (see above)."""
    gc.collect()
    gc.freeze()

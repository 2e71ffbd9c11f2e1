"""monitorsite/memory.py: the malloc arenas of the site's processes, counted by glibc itself."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.harness import ROOT

# Eight threads allocate at once (malloc, not Python's small-object allocator: 64 KiB blocks), then
# glibc's malloc_info() describes each arena as a <heap nr=...> element.
ARENAS_AFTER_THREADS = """
import ctypes, os, sys, threading
from monitorsite.memory import limit_malloc_arenas

later = os.environ.pop("SET_LATER", None)
if later is not None:  # as the site's .env sets it: after glibc read the environment
    os.environ["MALLOC_ARENA_MAX"] = later

print(limit_malloc_arenas())
barrier = threading.Barrier(8)
kept = []

def allocate():
    barrier.wait()
    kept.append([bytes(64 * 1024) for _ in range(50)])

threads = [threading.Thread(target=allocate) for _ in range(8)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
libc = ctypes.CDLL(None)
libc.open_memstream.restype = ctypes.c_void_p
libc.open_memstream.argtypes = (ctypes.POINTER(ctypes.c_char_p), ctypes.POINTER(ctypes.c_size_t))
libc.malloc_info.argtypes = (ctypes.c_int, ctypes.c_void_p)
libc.fclose.argtypes = (ctypes.c_void_p,)
buffer, size = ctypes.c_char_p(), ctypes.c_size_t()
stream = libc.open_memstream(ctypes.byref(buffer), ctypes.byref(size))
libc.malloc_info(0, stream)
libc.fclose(stream)
print(buffer.value.decode().count("<heap nr="))
"""


def arenas(env: dict[str, str]) -> tuple[str, int]:
    result = subprocess.run(
        [sys.executable, "-c", ARENAS_AFTER_THREADS],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    limited, count = result.stdout.split()
    return limited, int(count)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt and malloc_info")
def test_malloc_arenas_are_capped_at_two_unless_the_operator_chose_a_number() -> None:
    env = {key: value for key, value in os.environ.items() if key != "MALLOC_ARENA_MAX"}
    assert arenas(env) == ("True", 2)
    # The operator's own number wins, also from .env (read after the process started, when glibc
    # no longer looks at the environment).
    assert arenas({**env, "SET_LATER": "3"}) == ("True", 3)
    assert arenas({**env, "MALLOC_ARENA_MAX": "3"}) == ("True", 3)
    # One that is not a number: the site's two (glibc itself ignores it).
    assert arenas({**env, "SET_LATER": "lots"}) == ("True", 2)

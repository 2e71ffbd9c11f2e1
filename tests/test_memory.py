"""monitorsite/memory.py: the malloc arenas of the site's processes, counted by glibc itself."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness import ROOT, site_env

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


def printed(script: str, env: dict[str, str], *args: str) -> str:
    """What ``script`` prints, run in a fresh interpreter (glibc's malloc state is per process)."""
    result = subprocess.run(
        [sys.executable, "-c", script, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout


def arenas(env: dict[str, str]) -> tuple[str, int]:
    limited, count = printed(ARENAS_AFTER_THREADS, env).split()
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


# glibc raises its mmap threshold to the size of the largest mmapped block freed; mallinfo2's
# hblkhd is what is mmapped now. Prints whether a 512 KiB block got pages of its own after a 1 MiB
# one was freed.
MMAPPED_AFTER_A_LARGE_FREE = """
import ctypes, sys
from monitorsite.memory import limit_malloc_arenas

if sys.argv[1] == "tuned":
    limit_malloc_arenas()
fields = "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()

class Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in fields]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = Mallinfo2
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = (ctypes.c_size_t,)
libc.free.argtypes = (ctypes.c_void_p,)
libc.free(libc.malloc(1024 * 1024))
before = libc.mallinfo2().hblkhd
block = libc.malloc(512 * 1024)
print(libc.mallinfo2().hblkhd - before >= 512 * 1024)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt and mallinfo2")
@pytest.mark.parametrize(("how", "own_pages"), [("tuned", "True"), ("glibc's default", "False")])
def test_a_large_block_gets_pages_of_its_own_whatever_was_freed_before(how: str, own_pages: str) -> None:
    """So that a 1,000-trade body freed does not leave every later large buffer in the heap for good."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("MALLOC_")}
    mode = "tuned" if how == "tuned" else "default"
    assert printed(MMAPPED_AFTER_A_LARGE_FREE, env, mode).strip() == own_pages


JUDGES_AFTER_PRELOAD = """
import sys
import django
django.setup()
from alerts.rules import RULE_KINDS
from monitorsite.management.commands.qcluster import load_tasks
load_tasks()
modules = {path.rpartition(".")[0] for path in RULE_KINDS.values()}
print(sorted(modules - set(sys.modules)))
"""


def test_the_cluster_loads_every_rule_judge_before_it_forks(tmp_path: Path) -> None:
    """Each worker imported the judges on its first evaluation, a copy each (4 to 5 MiB over the
    cluster with the anomaly rules); loaded with the tasks, before the fork, they are shared."""
    env = {**os.environ, **site_env(tmp_path, sqlite=True), "DJANGO_SETTINGS_MODULE": "monitorsite.settings"}
    assert printed(JUDGES_AFTER_PRELOAD, env) == "[]\n"

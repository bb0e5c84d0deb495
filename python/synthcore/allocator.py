"""Keep freed memory in the process instead of returning it to the kernel after every large tensor (glibc only).

glibc hands blocks above its mmap threshold to the kernel on free and takes fresh zeroed pages on the next
allocation, so a generator or embedder step that allocates the same large activations every iteration pays page
faults for all of them again. Measured on `synthcore demo` (2 CPU threads, idle machine, same code with
``SYNTHCORE_MALLOC_TUNING=0`` and without): 53 M minor page faults and 90 s of system time before, 8.5 M and 19 s
after, 131 s -> 83 s for the whole demo, identical results; peak resident memory grows from 4.1 to 4.6 GB because
freed memory is kept for reuse. The commands call :func:`tune_allocator` at start;
``SYNTHCORE_MALLOC_TUNING=0`` turns it off. Library users can call it themselves.
"""

import ctypes
import ctypes.util
import os
import sys

__all__ = ["tune_allocator"]

_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3

MMAP_THRESHOLD = 32 << 20  # glibc's largest accepted value: blocks up to 32 MB come from the reusable heap
TRIM_THRESHOLD = -1  # never give the heap top back (mallopt: -1 disables trimming); the next step reuses it
TOP_PAD = 512 << 20  # grow the heap in large steps


def tune_allocator() -> bool:
    """Apply the settings above; True if they took effect (False off glibc or when disabled)."""
    if os.environ.get("SYNTHCORE_MALLOC_TUNING", "1") == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    ok = mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
    ok = mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1 and ok
    ok = mallopt(_M_TOP_PAD, TOP_PAD) == 1 and ok
    return ok

"""Keep freed memory for the next step instead of handing it back to the kernel.

A step allocates and frees the same large buffers (the lines, the decoded
columns, per-model parts) again and again; given back each time, every page
of the next step faults in afresh. With 1,000 models a step holds 512k lines;
kept, the page faults of that replay fell from 317,000 to 197,000 and its
peak rose from 909 to 1,063 MiB (``benchmarks/RESULTS.md``): what is kept is
about what the largest step used, not more with every step.

:func:`keep_freed_memory` must run before polars is imported: its allocator
(jemalloc) reads its options once, when it first allocates.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

__all__ = ["keep_freed_memory"]

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
_KEEP = 256 << 20  # allocations below 256 MiB come from the heap, and up to 1 GiB freed stays there


def keep_freed_memory() -> bool:
    """Tune glibc's malloc (numpy's arrays) and polars' jemalloc to keep freed pages; True when glibc took it.

    A user's own ``_RJEM_MALLOC_CONF`` or ``MALLOC_*_`` settings win.
    """
    os.environ.setdefault("_RJEM_MALLOC_CONF", "dirty_decay_ms:-1,muzzy_decay_ms:-1")
    if any(k in os.environ for k in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")):
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, _KEEP)) and bool(mallopt(_M_TRIM_THRESHOLD, 4 * _KEEP))

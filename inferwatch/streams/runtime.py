"""Process-level settings for the hot path."""

from __future__ import annotations

from threadpoolctl import threadpool_limits

__all__ = ["single_threaded_blas"]


def single_threaded_blas():
    """Keep BLAS on one thread: the core's matrix products are small, and
    OpenBLAS worker threads spin after each one, taking the cores polars
    parses with (measured: decoding ran about a third slower beside them).

    >>> with single_threaded_blas():
    ...     pass
    """
    return threadpool_limits(limits=1, user_api="blas")

"""Process-level settings for the hot path."""

from __future__ import annotations

from threadpoolctl import threadpool_limits

__all__ = ["single_threaded_blas", "faust_datadir", "FAUST_WEB_PAGES_OFF"]

# Faust's own web pages (its tables' contents, the router, stats, graph, performance) are off: the web port
# serves only what inferwatch adds (/healthz), and a table's contents are nobody's business on the network.
FAUST_WEB_PAGES_OFF = {"web_router_enabled": False, "web_tables_enabled": False, "web_graph_enabled": False,
                       "web_stats_enabled": False, "web_metrics_enabled": False}


def single_threaded_blas():
    """Keep BLAS on one thread: the core's matrix products are small, and
    OpenBLAS worker threads spin after each one, taking the cores polars
    parses with (measured: decoding ran about a third slower beside them).

    >>> with single_threaded_blas():
    ...     pass
    """
    return threadpool_limits(limits=1, user_api="blas")


def faust_datadir(app_id: str) -> str:
    """Faust's data folder: under the temporary folder, not the working directory (its tables are in memory).

    >>> faust_datadir("inferwatch").endswith("inferwatch-faust/inferwatch")
    True
    """
    import tempfile
    from pathlib import Path

    parent = Path(tempfile.gettempdir()) / "inferwatch-faust"
    parent.mkdir(exist_ok=True)  # Faust makes the app's own folder, not its parents
    return str(parent / app_id)

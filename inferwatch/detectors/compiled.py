"""numba's ``njit``, imported without numba's probe for a BLAS.

numba's first compiled call sets up its typing registries, and on the way
imports ``scipy.linalg`` (about 0.2 s) only to learn whether ``np.dot`` can
be compiled. No kernel of inferwatch uses linear algebra, so the probe is
answered "no BLAS" (numba then refuses ``np.dot`` inside ``@njit`` code, and
nothing else changes); ``scipy`` stays importable for everything else.

>>> from inferwatch.detectors.compiled import njit
>>> njit(lambda x: x + 1)(41)
42
"""

from __future__ import annotations

import sys

__all__ = ["njit"]

_PROBE = "scipy.linalg.cython_blas"

if _PROBE in sys.modules or "numba.np.arraymath" in sys.modules:  # scipy's BLAS already loaded, or probed
    from numba import njit
else:
    sys.modules[_PROBE] = None  # type: ignore[assignment]  # an import of it raises ImportError: "no BLAS"
    try:
        import numba.np.arraymath  # noqa: F401  (where numba probes, once)
        from numba import njit
    finally:
        del sys.modules[_PROBE]

"""Helpers shared by the tests and the benchmarks (run from a checkout of the repository).

* :mod:`inferwatch.testing.services`: real Kafka and Redis started by
  ``scripts/services``, and kcat-based produce / consume helpers;
* :mod:`inferwatch.testing.synthetic`: a synthetic card-fraud model with known distributions;
* :mod:`inferwatch.testing.scenarios`: the scenario suite with known change points, and its scorer;
* :mod:`inferwatch.testing.datafile`: benchmark input files, generated once.
"""

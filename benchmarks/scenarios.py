"""Detection quality: ``python benchmarks/scenarios.py [--seeds 5]``.

The suite and its scorer live in :mod:`inferwatch.testing.scenarios` (the
tests run the same scenarios); this script prints the table.
"""

from inferwatch.testing.scenarios import main

if __name__ == "__main__":
    main()

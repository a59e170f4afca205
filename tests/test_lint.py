"""The pure core stays lint- and type-clean (settings in pyproject.toml)."""

import subprocess
import sys

from inferwatch.testing.services import ROOT


def test_ruff_is_clean_on_the_package():
    res = subprocess.run([sys.executable, "-m", "ruff", "check", "inferwatch/detectors",
                          "inferwatch/errors.py", "inferwatch/__init__.py"], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stdout


def test_mypy_is_clean_on_the_core():
    res = subprocess.run([sys.executable, "-m", "mypy", "--follow-imports=silent", "inferwatch/detectors",
                          "inferwatch/errors.py"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout

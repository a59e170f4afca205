"""Start-up of whole ``inferwatch`` processes: median wall time of several runs (target: --help, --version < 0.3 s).

``python benchmarks/startup.py [--runs 9]`` times, each as a new process
after one warm-up run: ``inferwatch --help``, ``inferwatch --version``,
``inferwatch replay --help``, ``python -c "from inferwatch import Guard"``
and, for scale, a bare ``python -c pass``; and it lists which heavy modules
``from inferwatch import Guard`` loads (none is the target).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time

HEAVY = ("confluent_kafka", "kafka", "aiokafka", "faust", "redis", "uvicorn", "plotly", "prometheus_client")


def wall(cmd: list[str], runs: int) -> list[float]:
    subprocess.run(cmd, capture_output=True, check=True)  # warm-up: the page cache, bytecode
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True)
        out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=9)
    runs = parser.parse_args().runs
    exe = shutil.which("inferwatch") or sys.exit("inferwatch is not on the PATH: pip install -e . first")
    cases = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "inferwatch --help": [exe, "--help"],
        "inferwatch --version": [exe, "--version"],
        "inferwatch replay --help": [exe, "replay", "--help"],
        "from inferwatch import Guard": [sys.executable, "-c", "from inferwatch import Guard"],
    }
    print(f"{'command':32} {'median s':>9} {'min s':>7} {'max s':>7}   ({runs} runs each)")
    for name, cmd in cases.items():
        times = wall(cmd, runs)
        print(f"{name:32} {statistics.median(times):9.3f} {min(times):7.3f} {max(times):7.3f}")
    probe = subprocess.run([sys.executable, "-c", "from inferwatch import Guard; import sys; print(' '.join(sys.modules))"],
                           capture_output=True, text=True, check=True).stdout.split()
    heavy = sorted({m.split(".")[0] for m in probe} & set(HEAVY))
    print(f"heavy modules loaded by 'from inferwatch import Guard': {heavy or 'none'}")


if __name__ == "__main__":
    main()

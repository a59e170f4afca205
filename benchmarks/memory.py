"""Peak RSS of ``inferwatch replay`` on 1M and on 5M events: bounded state means they match.

Usage: ``python benchmarks/memory.py [N1 N2]`` (default 1,000,000 and 5,000,000).
Each replay runs in its own process; the file is generated once under benchmarks/data/.
"""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def child(path: str) -> None:
    from inferwatch.detectors.config import MonitorConfig
    from inferwatch.streams.replay import replay_file

    with open("/dev/null", "wb") as out:
        summary = replay_file(path, MonitorConfig(), out)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{summary.events} {peak_mib:.1f} {summary.rate:.0f}")


def main() -> None:
    from inferwatch.testing.datafile import events_file

    sizes = [int(a) for a in sys.argv[1:]] or [1_000_000, 5_000_000]
    peaks = []
    for n in sizes:
        path = events_file(n)
        out = subprocess.run([sys.executable, __file__, "--child", str(path)], capture_output=True, text=True, check=True)
        events, peak, rate = out.stdout.split()
        peaks.append(float(peak))
        print(f"{int(events):>10,} events: peak RSS {float(peak):7.1f} MiB, {float(rate):,.0f} events/s")
    if len(peaks) == 2:
        print(f"difference: {abs(peaks[1] - peaks[0]) / peaks[0]:.1%} (target < 10%)")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        child(sys.argv[2])
    else:
        main()

"""Print a free TCP port below the kernel's ephemeral range (see inferwatch.testing.services.listen_port);
``--bus``: the port of a Redis Cluster node (port + 10000 free and below the range too).

Standalone (no inferwatch import), so ``scripts/services`` can run before the package is installed.
"""

import random
import socket
import sys
from pathlib import Path

try:
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
except (OSError, ValueError, IndexError):
    low = 32768
bus = "--bus" in sys.argv  # a Redis Cluster node: its bus port (port + 10000) must be free too, and below the range
if bus:
    low = min(low, low - 10_000)
pick = random.SystemRandom()
for _ in range(500):
    port = pick.randrange(10_000, max(low, 10_001))
    try:
        for p in (port, port + 10_000) if bus else (port,):
            with socket.socket() as s:
                s.bind(("0.0.0.0", p))
    except OSError:
        continue
    print(port)
    break
else:
    raise SystemExit(f"no free port between 10000 and {low}")

"""Print a free TCP port below the kernel's ephemeral range (see inferwatch.testing.services.listen_port);
``--below N``: below N too.

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
if len(sys.argv) == 3 and sys.argv[1] == "--below":  # a lower ceiling still (a Redis cluster bus is port + 10000)
    low = min(low, int(sys.argv[2]))
pick = random.SystemRandom()
for _ in range(500):
    port = pick.randrange(10_000, max(low, 10_001))
    try:
        with socket.socket() as s:
            s.bind(("0.0.0.0", port))
    except OSError:
        continue
    print(port)
    break
else:
    raise SystemExit(f"no free port between 10000 and {low}")

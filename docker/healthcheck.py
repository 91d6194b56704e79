"""Container health check: exit 0 when the service's GET /health answers 200.

Used by the images' HEALTHCHECK and by compose; the standard library only, so it works in
every image. The port comes from the service's own variable (GATEWAY_PORT, RESPONDER_PORT,
MEMORY_PORT), falling back to the default given on the command line.

    python /opt/tidings/healthcheck.py GATEWAY_PORT 8000
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: healthcheck.py PORT_VARIABLE DEFAULT_PORT", file=sys.stderr)
        return 2
    port = os.environ.get(argv[1]) or argv[2]
    url = f"http://127.0.0.1:{port}/health"
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return 0 if response.status == 200 else 1
    except (urllib.error.URLError, OSError) as exc:
        print(f"{url}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))

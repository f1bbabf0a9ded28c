"""A container's healthcheck: GET a /healthz URL, healthy on 200 (stdlib only).

    python docker/healthcheck.py "http://web:8000/healthz?check=worker:ingest"

The Host header is the first of DJANGO_ALLOWED_HOSTS (Django refuses other hosts)."""

import os
import sys
import urllib.error
import urllib.request


def main(url: str) -> int:
    hosts = [h.strip() for h in os.environ.get("DJANGO_ALLOWED_HOSTS", "").split(",") if h.strip()]
    headers = {"Host": hosts[0]} if hosts and hosts[0] not in ("*",) else {}
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 - our own URL
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            return 0 if response.status == 200 else 1
    except urllib.error.HTTPError as error:
        print(error.read().decode(errors="replace")[:500], file=sys.stderr)
    except OSError as error:
        print(error, file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))

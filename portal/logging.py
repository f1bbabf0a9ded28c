"""Structured logs: one JSON object per line, and a request id that follows the work.

`LOG_FORMAT=json` (the default in production, `DJANGO_DEBUG=0`) makes every process
(gunicorn, Celery worker, beat, commands) write lines such as

    {"time": "2026-03-01T08:00:00.123Z", "level": "INFO", "logger": "compute.tasks",
     "message": "usage batch 42 applied: done", "request_id": "3f0c…", "task_id": "…",
     "task_name": "compute.tasks.usage_batch_apply_task"}

The request id: `RequestIdMiddleware` takes the client's `X-Request-ID` (if it is a
sane token) or makes one, answers it in the same header and logs one line per request.
A task published while a request id is current carries it in a message header
(`before_task_publish`); the worker makes it current again while the task runs
(`task_prerun`), so the log lines of a usage batch's POST and of its application share
it without any task taking it as an argument. A task published with none (beat, the
sweeper's own run) gets a fresh one, which the tasks it publishes inherit.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Callable
from contextvars import ContextVar, Token
from datetime import UTC, datetime

from celery.signals import before_task_publish, task_postrun, task_prerun
from django.conf import settings
from django.http import HttpRequest, HttpResponse

HEADER = "X-Request-ID"
_SANE = re.compile(r"[A-Za-z0-9._:-]{1,128}\Z")

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)

request_log = logging.getLogger("portal.request")
_PROBES = frozenset({"healthz", "metrics"})


def new_request_id() -> str:
    return uuid.uuid4().hex


def current_request_id() -> str | None:
    return request_id_var.get()


class RequestIdFilter(logging.Filter):
    """Puts the current request id (and task, in a worker) on every record. Runs when
    the record is emitted, in the thread that logged it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get()
        if not hasattr(record, "task_id"):
            from celery import current_task  # a proxy: false outside a task

            if current_task and current_task.request.id is not None:
                record.task_id = current_task.request.id
                record.task_name = current_task.name
        return True


# What every LogRecord has; anything else on a record was passed in `extra=`.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "request_id",
    "task_id",
    "task_name",
}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ms), level, logger, message, request_id,
    task_id/task_name in a task, the exception's traceback, and any `extra=` fields."""

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
        }
        if getattr(record, "task_id", None):
            out["task_id"] = record.task_id  # type: ignore[attr-defined]
            out["task_name"] = getattr(record, "task_name", None)
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(out, ensure_ascii=False, default=str)


class RequestIdMiddleware:
    """Makes the request id current for the request, answers it in `X-Request-ID`, and
    logs the request (method, path, view, status, duration) when `LOG_REQUESTS`."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        sent = request.headers.get(HEADER, "")
        request_id = sent if _SANE.match(sent) else new_request_id()
        request.request_id = request_id  # type: ignore[attr-defined]
        token = request_id_var.set(request_id)
        start = time.perf_counter()
        try:
            response = self.get_response(request)
            response[HEADER] = request_id
            match = getattr(request, "resolver_match", None)
            view = match.view_name if match else None
            # Probes ask every few seconds; only their failures are worth a line.
            quiet = view in _PROBES and response.status_code < 400
            if settings.LOG_REQUESTS and not quiet:
                request_log.info(
                    "%s %s %s",
                    request.method,
                    request.path,
                    response.status_code,
                    extra={
                        "method": request.method,
                        "path": request.path,
                        "view": view,
                        "status": response.status_code,
                        "duration_ms": round((time.perf_counter() - start) * 1000, 1),
                    },
                )
            return response
        finally:
            request_id_var.reset(token)


@before_task_publish.connect
def _request_id_to_message(headers: dict | None = None, **_kwargs) -> None:
    request_id = request_id_var.get()
    if request_id and headers is not None:
        headers.setdefault("request_id", request_id)


_task_tokens: dict[str | None, Token[str | None]] = {}


@task_prerun.connect
def _request_id_from_message(task_id: str | None = None, task=None, **_kwargs) -> None:
    if task is None or task.request.is_eager:
        return  # run in the publisher's thread: its request id is current already
    request_id = getattr(task.request, "request_id", None)
    if not (isinstance(request_id, str) and _SANE.match(request_id)):
        request_id = new_request_id()
    _task_tokens[task_id] = request_id_var.set(request_id)


@task_postrun.connect
def _request_id_done(task_id: str | None = None, **_kwargs) -> None:
    token = _task_tokens.pop(task_id, None)
    if token is not None:
        request_id_var.reset(token)

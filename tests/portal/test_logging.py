"""Structured logs and the request id (portal/logging.py)."""

from __future__ import annotations

import json
import logging
import sys

from django.test import Client

from portal.logging import (
    HEADER,
    JsonFormatter,
    RequestIdFilter,
    current_request_id,
    request_id_var,
)


def _record(message: str = "hello %s", *args, **extra) -> logging.LogRecord:
    record = logging.getLogger("portal.test").makeRecord(
        "portal.test", logging.WARNING, __file__, 1, message, args or ("world",), None, extra=extra
    )
    RequestIdFilter().filter(record)
    return record


def test_a_line_is_one_json_object_with_the_fields_operators_search_by():
    token = request_id_var.set("req-123")
    try:
        line = JsonFormatter().format(_record(batch=42))
    finally:
        request_id_var.reset(token)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["level"] == "WARNING"
    assert entry["logger"] == "portal.test"
    assert entry["message"] == "hello world"
    assert entry["request_id"] == "req-123"
    assert entry["batch"] == 42  # passed with extra=
    assert entry["time"].endswith("Z") and "T" in entry["time"]


def test_an_exception_stays_within_its_line_and_chinese_stays_readable():
    try:
        raise ValueError("坏了\nsecond line")
    except ValueError:
        record = logging.getLogger("x").makeRecord(
            "x", logging.ERROR, __file__, 1, "失败", (), sys.exc_info()
        )
    RequestIdFilter().filter(record)
    line = JsonFormatter().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["message"] == "失败"
    assert "ValueError: 坏了" in entry["exc_info"]
    assert entry["request_id"] is None


def test_a_sane_request_id_is_kept_and_answered(db):
    response = Client().get("/healthz", headers={HEADER: "lb-7f3a.01:xyz"})
    assert response[HEADER] == "lb-7f3a.01:xyz"


def test_a_missing_or_strange_request_id_is_replaced(db):
    made = Client().get("/healthz")[HEADER]
    assert len(made) == 32 and made.isalnum()
    for strange in ("a b", "x" * 129, "<script>", "id\u00e9"):
        answered = Client().get("/healthz", headers={HEADER: strange})[HEADER]
        assert answered != strange and len(answered) == 32


def test_every_request_is_logged_with_its_id_and_view(db, settings, caplog):
    settings.LOG_REQUESTS = True
    caplog.handler.addFilter(RequestIdFilter())
    with caplog.at_level(logging.INFO, logger="portal.request"):
        Client().get("/", headers={HEADER: "req-log-1"})
    (line,) = [r for r in caplog.records if r.name == "portal.request"]
    assert line.request_id == "req-log-1"
    assert (line.method, line.path, line.view) == ("GET", "/", "portal:landing")
    assert line.status == 200
    assert line.duration_ms >= 0
    assert current_request_id() is None  # reset once the request is over


def test_probes_are_logged_only_when_they_fail(db, settings, caplog):
    """A load balancer asks /healthz every few seconds: a line each would drown the log."""
    settings.LOG_REQUESTS = True
    settings.HEALTH_QUEUES = []
    settings.HEARTBEAT_KEY_PREFIX = "test-probe-quiet:heartbeat"
    with caplog.at_level(logging.INFO, logger="portal.request"):
        assert Client().get("/healthz?check=database").status_code == 200
        assert Client().get("/metrics").status_code == 200
        assert Client().get("/healthz?check=beat").status_code == 503  # no beat here
    lines = [r for r in caplog.records if r.name == "portal.request"]
    assert [(r.view, r.status) for r in lines] == [("healthz", 503)]


def test_a_published_task_carries_the_request_id_in_its_headers():
    """before_task_publish: through the real broker, the message's headers."""
    from compute.tasks import usage_batches_sweep
    from portal.celery import app
    from portal.heartbeat import redis_client

    queue = "test-request-id-header"
    client = redis_client(app.conf.broker_url)
    token = request_id_var.set("req-publish-1")
    try:
        usage_batches_sweep.apply_async(queue=queue)
    finally:
        request_id_var.reset(token)
    usage_batches_sweep.apply_async(queue=queue)  # none current: no header
    try:
        messages = [json.loads(raw) for raw in client.lrange(queue, 0, -1)]
    finally:
        client.delete(queue)
    # LPUSH: the newest first.
    assert [m["headers"].get("request_id") for m in messages] == [None, "req-publish-1"]


def test_a_task_runs_with_the_request_id_of_its_message():
    """task_prerun: a worker makes the message's id current while the task runs, and
    gives a task published without one an id of its own."""
    from portal.celery import app

    seen: list[str | None] = []

    @app.task(name="tests.portal.request_id_probe")
    def probe() -> None:
        seen.append(current_request_id())

    # Run as a worker runs a message: not eagerly, with the message's headers.
    from celery.app.trace import build_tracer

    tracer = build_tracer(probe.name, probe, app=app, eager=False, propagate=True)
    tracer("task-1", (), {}, {"id": "task-1", "request_id": "req-from-message"})
    tracer("task-2", (), {}, {"id": "task-2"})
    tracer("task-3", (), {}, {"id": "task-3", "request_id": "bad id with spaces"})
    assert seen[0] == "req-from-message"
    assert seen[1] and len(seen[1]) == 32
    assert seen[2] and seen[2] != "bad id with spaces"
    assert current_request_id() is None

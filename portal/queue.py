"""Putting a task on the broker once the transaction commits, without letting a broker
outage turn a committed action into an error page.

A service that has approved an application or sent an invitation has done its work when
its transaction commits; the e-mail that follows is a courtesy. With Redis down, Celery's
`delay()` raises after the commit, and Django would show the person an error for an
action that in fact succeeded (issue #16: the approval stood, the page said it failed).
Here the failure is logged instead, with the task and its arguments, so operations can
send it again. Usage batches have an outbox of their own (compute.batches)."""

from __future__ import annotations

import importlib
import logging
from typing import Any

from celery import Task, current_app
from django.db import transaction
from kombu.exceptions import KombuError
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

# What publishing a task raises when the broker is unreachable (kombu wraps most of it).
BROKER_ERRORS = (KombuError, RedisError, OSError)


def task_named(name: str) -> Task:
    """The registered task called `name` (its module imported by Celery's autodiscovery),
    for a module that the task's own module imports: asking by name keeps the import
    one-way (compute.tasks imports compute.batches, not the other way), and the task
    object returned honours eager mode and test patches as an import would."""
    # Import the task's module first: nothing else may have (the web process never
    # imports compute.tasks, and Celery registers a task when its module is imported).
    importlib.import_module(name.rpartition(".")[0])
    task: Task = current_app.tasks[name]
    return task


def publish(task: Task, *args: Any, **kwargs: Any) -> bool:
    """`task.delay(*args, **kwargs)`; False, logged, if the broker is unreachable."""
    try:
        task.delay(*args, **kwargs)
    except BROKER_ERRORS:
        log.error(
            "broker unreachable: %s%r %r was not sent; send it again when the broker is back",
            task.name,
            args,
            kwargs,
        )
        return False
    return True


def publish_on_commit(task: Task, *args: Any, **kwargs: Any) -> None:
    """`publish` once the current transaction commits (nothing if it rolls back)."""
    transaction.on_commit(lambda: publish(task, *args, **kwargs))

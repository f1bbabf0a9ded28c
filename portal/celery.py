"""The Celery application; configuration comes from Django settings (CELERY_*)."""

import gc
import logging.config
import os

from celery import Celery
from celery.signals import setup_logging, worker_process_init, worker_process_shutdown, worker_ready

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

# Their signal handlers carry the request id from publisher to task (portal/logging.py)
# and count the tasks run (portal/metrics.py).
import portal.logging
import portal.metrics  # noqa: F401
from portal.heartbeat import WorkerHeartbeat

app = Celery("suanli")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
app.steps["worker"].add(WorkerHeartbeat)

DEFAULT_QUEUE = "celery"
_queue_of_task: dict[str, str] | None = None


def route_task(name, args, kwargs, options, task=None, **_kw):
    """The queue of a task by its kind of work (settings.TASK_QUEUES); None leaves it on
    the default queue. A default queue other than `celery` (CELERY_QUEUE, or the tests'
    worker switching it while it runs: tests/integration.py) takes every task, so that
    one worker on that queue runs them all. Read at each publish for that reason."""
    global _queue_of_task
    default = app.conf.task_default_queue
    if default != DEFAULT_QUEUE:
        return {"queue": default}
    if _queue_of_task is None:
        from django.conf import settings

        _queue_of_task = {
            task_name: queue for queue, names in settings.TASK_QUEUES.items() for task_name in names
        }
    queue = _queue_of_task.get(name)
    return {"queue": queue} if queue else None


@setup_logging.connect
def _logging_from_django(loglevel=None, **_kwargs) -> None:
    """Workers and beat log as the web processes do (settings.LOGGING: JSON lines with
    the request id in production) instead of in Celery's own format. LOG_LEVEL sets the
    level where it is set, else the `-l` option."""
    from django.conf import settings

    logging.config.dictConfig(settings.LOGGING)
    if loglevel and not os.environ.get("LOG_LEVEL"):
        logging.getLogger().setLevel(loglevel)


@worker_process_init.connect
def _freeze_startup_objects(**_kwargs) -> None:
    """Leave the objects of startup (Django, the apps, their modules) out of garbage
    collection: a usage batch allocates ~100,000 objects, and every full collection
    also walked all of those, ~50 ms (one batch in four took 40% longer)."""
    gc.freeze()


@worker_process_shutdown.connect
def _metrics_of_dead_child(pid=None, **_kwargs) -> None:
    from portal.metrics import process_dead

    process_dead(pid or os.getpid())


@worker_ready.connect
def _serve_metrics(**_kwargs) -> None:
    from django.conf import settings

    if settings.CELERY_METRICS_PORT:
        from portal.metrics import worker_metrics_serve

        worker_metrics_serve(settings.CELERY_METRICS_PORT)

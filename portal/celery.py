"""The Celery application; configuration comes from Django settings (CELERY_*)."""

import gc
import os

from celery import Celery
from celery.signals import worker_process_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

app = Celery("suanli")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_process_init.connect
def _freeze_startup_objects(**_kwargs) -> None:
    """Leave the objects of startup (Django, the apps, their modules) out of garbage
    collection: a usage batch allocates ~100,000 objects, and every full collection
    also walked all of those, ~50 ms (one batch in four took 40% longer)."""
    gc.freeze()

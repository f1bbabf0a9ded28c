"""Celery beat's scheduler: django-celery-beat's, with a heartbeat for /healthz written
from beat's own loop (see portal.heartbeat for why not from a task).

Settings name it (`CELERY_BEAT_SCHEDULER`); beat imports it once Django is set up, as
it must: django-celery-beat's scheduler reads its models."""

from __future__ import annotations

import time

from django.conf import settings
from django_celery_beat.schedulers import DatabaseScheduler

from portal.heartbeat import beat_heartbeat


class HeartbeatScheduler(DatabaseScheduler):
    _last_heartbeat = 0.0

    def tick(self, *args, **kwargs):
        interval = super().tick(*args, **kwargs)
        now = time.monotonic()
        # tick runs every few seconds (and again after each task sent); once per
        # HEARTBEAT_INTERVAL is enough.
        if now - self._last_heartbeat >= settings.HEARTBEAT_INTERVAL and beat_heartbeat():
            self._last_heartbeat = now
        return interval

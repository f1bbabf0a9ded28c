"""The WSGI application (also what `runserver` serves)."""

import gc
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
application = get_wsgi_application()


def _freeze_startup_objects() -> None:
    """Load the URLconf (and with it every view module) now, then leave what startup
    made out of garbage collection: a usage batch's POST parses ~50,000 objects, and a
    full collection would walk all of Django's too (~15 ms a POST; the worker does the
    same, see portal.celery)."""
    from django.urls import get_resolver

    get_resolver().url_patterns  # noqa: B018 - imports the views
    gc.freeze()


_freeze_startup_objects()

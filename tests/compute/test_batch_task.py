"""compute.batches enqueues the apply task by name, so it need not import compute.tasks
(which imports it): the name must stay the task's, and the import must stay one-way."""

import os
import subprocess
import sys

import grimp

from compute.batches import APPLY_TASK, usage_batch_enqueue
from compute.models import UsageBatch
from portal.queue import task_named


def test_the_name_is_the_apply_tasks():
    from compute.tasks import usage_batch_apply_task

    assert usage_batch_apply_task.name == APPLY_TASK
    assert task_named(APPLY_TASK).name == APPLY_TASK


def test_batches_does_not_import_tasks_not_even_inside_a_function():
    graph = grimp.build_graph("compute")
    assert not graph.direct_import_exists(importer="compute.batches", imported="compute.tasks")
    assert graph.direct_import_exists(importer="compute.tasks", imported="compute.batches")


def test_enqueue_sends_the_batch_to_the_apply_task(ledger_world, monkeypatch):
    from compute.tasks import usage_batch_apply_task

    sent = []
    monkeypatch.setattr(usage_batch_apply_task, "delay", lambda batch_id: sent.append(batch_id))
    batch = UsageBatch.objects.create(data_center=ledger_world.dc, body_hash="0" * 64, received=0)
    assert usage_batch_enqueue(batch.pk) is True
    assert sent == [batch.pk]
    batch.refresh_from_db()
    assert batch.enqueued_at is not None


def test_the_task_is_found_in_a_process_that_never_imported_compute_tasks():
    # The web process imports compute.batches but not compute.tasks; Celery registers a
    # task only when its module is imported, so the lookup must import it itself.
    script = (
        "import sys, django; django.setup()\n"
        "from compute.batches import APPLY_TASK\n"
        "from portal.queue import task_named\n"
        "assert 'compute.tasks' not in sys.modules\n"
        "print(task_named(APPLY_TASK).name)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "portal.settings"},
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == APPLY_TASK

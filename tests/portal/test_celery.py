from portal.celery import app


def test_every_task_has_a_soft_limit_within_its_hard_limit():
    """A task with a shorter hard limit than the global soft one cannot even be sent
    (beat found that out in the demo)."""
    app.loader.import_default_modules()
    ours = {
        name: task
        for name, task in app.tasks.items()
        if name.split(".")[0] in {"portal", "vouchers", "compute"}
    }
    assert ours, "no tasks found"
    for name, task in ours.items():
        hard = task.time_limit or app.conf.task_time_limit
        soft = task.soft_time_limit or app.conf.task_soft_time_limit
        assert hard and soft and soft <= hard, name
        assert task.acks_late, name


def test_beat_schedule_names_real_tasks():
    app.loader.import_default_modules()
    for entry in app.conf.beat_schedule.values():
        assert entry["task"] in app.tasks, entry["task"]

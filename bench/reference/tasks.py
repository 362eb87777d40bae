"""A bare Celery app with one no-op task: the ceiling for one worker process on this broker."""

import os

from celery import Celery

app = Celery("reference", broker=os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/13"))
app.conf.update(task_acks_late=True, worker_prefetch_multiplier=1, task_default_queue="reference",
                broker_connection_retry_on_startup=True)


@app.task(name="reference.noop")
def noop(n: int) -> None:
    return None

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("herald")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def publish(task_name: str, args: list, queue: str, countdown: float | None = None) -> bool:
    """Send a task message; return False instead of raising or waiting when the broker is down.

    Callers only publish work whose row is already committed, and a periodic sweep
    republishes rows that stay unpublished, so a failed publish delays work but loses none.
    """
    import logging

    from kombu.exceptions import OperationalError

    try:
        app.send_task(task_name, args=args, queue=queue, countdown=countdown, retry=False)
    except (OperationalError, OSError) as exc:
        logging.getLogger(__name__).warning("broker unavailable, %s(%s) left for the sweep: %s", task_name, args, exc)
        return False
    return True

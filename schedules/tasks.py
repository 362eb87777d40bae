from celery import shared_task
from django.conf import settings
from django.db import DatabaseError

from core import sweeps
from schedules import firing


@shared_task(autoretry_for=(DatabaseError,), retry_backoff=1, retry_backoff_max=30, retry_jitter=True, max_retries=10)
def fire_due() -> int:
    """Fire every schedule whose next occurrence has come, a chunk at a time (each occurrence once)."""
    return sweeps.drain(firing.fire_due, settings.HERALD_SCHEDULE_CHUNK)

from celery import shared_task
from django.conf import settings
from django.db import DatabaseError
from redis.exceptions import RedisError

from campaigns import fanout


@shared_task(
    # PostgreSQL restarting: retry with backoff; a chunk that did not commit is redone from the same cursor.
    autoretry_for=(DatabaseError, RedisError), retry_backoff=2, retry_backoff_max=60, retry_jitter=True, max_retries=20,
)
def fan_out(campaign_id: str) -> None:
    fanout.fan_out(campaign_id)


@shared_task
def resume_fan_outs() -> int:
    """Restart fan-outs that stopped making progress (a killed worker, a lost message)."""
    return fanout.resume_stalled(settings.HERALD_FAN_OUT_STALL_SECONDS)

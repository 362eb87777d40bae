import logging
import os
import threading

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")


def _free_prefetch_slot_when_ack_fails() -> None:
    """Make kombu's Redis QoS release its local prefetch slot even when the ack cannot reach Redis.

    kombu forgets a delivered message only after the ack's Redis call succeeds. A task that
    finishes while the broker is down therefore keeps its prefetch slot for good; once every
    slot is held that way the worker stops polling Redis, never notices the connection is
    gone, and never consumes again, though the process looks healthy (seen in tests with a
    broker restart during busy sweeps). Freeing the slot lets the consumer poll, hit the
    connection error and reconnect. The message stays in Redis's unacked index, so Redis
    redelivers it after the visibility timeout; tasks are idempotent, so that costs a no-op.
    """
    from kombu.transport import redis as kombu_redis
    from kombu.transport.virtual.base import QoS as VirtualQoS

    redis_ack, redis_reject = kombu_redis.QoS.ack, kombu_redis.QoS.reject

    def ack(self, delivery_tag):
        try:
            redis_ack(self, delivery_tag)
        except Exception:
            VirtualQoS.ack(self, delivery_tag)
            raise

    def reject(self, delivery_tag, requeue=False):
        try:
            redis_reject(self, delivery_tag, requeue=requeue)
        except Exception:
            VirtualQoS.ack(self, delivery_tag)
            raise

    kombu_redis.QoS.ack, kombu_redis.QoS.reject = ack, reject


_free_prefetch_slot_when_ack_fails()

app = Celery("herald")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


# Publishing never holds a request: a broker that is down or stalled (SIGSTOP) is given
# HERALD_PUBLISH_TIMEOUT_SECONDS, then the message is left to the relay and dispatch sweeps,
# which republish from the database. Consumers keep the broker's own settings.
_publishing = threading.local()


def _publish_connection():
    """This thread's broker connection for publishing, reused across publishes (one per thread:
    kombu connections are not thread-safe), with the short timeouts above."""
    connection = getattr(_publishing, "connection", None)
    if connection is None or _publishing.pid != os.getpid():
        from django.conf import settings

        timeout = settings.HERALD_PUBLISH_TIMEOUT_SECONDS
        connection = app.connection_for_write(
            connect_timeout=timeout,
            transport_options={
                "socket_timeout": timeout, "socket_connect_timeout": timeout,  # Redis
                "read_timeout": timeout, "write_timeout": timeout,  # RabbitMQ (py-amqp)
                "max_retries": 0,
            },
        )
        _publishing.connection, _publishing.pid = connection, os.getpid()
    return connection


def _drop_publish_connection() -> None:
    connection = getattr(_publishing, "connection", None)
    _publishing.connection = None
    if connection is not None:
        try:
            connection.release()
        except Exception:  # a broken connection may fail to close; it is dropped either way
            pass


def publish(task_name: str, args: list, queue: str) -> bool:
    """Send a task message; return False instead of raising or waiting when the broker is down.

    Callers only publish work whose row is already committed, and a periodic sweep
    republishes rows that stay unpublished, so a failed publish delays work but loses none.
    """
    from kombu.exceptions import OperationalError
    from redis.exceptions import RedisError

    try:
        app.send_task(task_name, args=args, queue=queue, retry=False, connection=_publish_connection())
    except (OperationalError, OSError, RedisError) as exc:
        _drop_publish_connection()
        logging.getLogger(__name__).warning("broker unavailable, %s(%s) left for the sweep: %s", task_name, args, exc)
        return False
    return True

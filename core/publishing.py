"""Publishing a task message: never waiting on the broker, never raising."""

import logging
import os
import threading

from celery import current_app as app

from core.queues import broker_queue

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
    """Send a task message to a lane's queue (`queue` as code names it, e.g. `sms.urgent`); return
    False instead of raising or waiting when the broker is down.

    Callers only publish work whose row is already committed, and a periodic sweep
    republishes rows that stay unpublished, so a failed publish delays work but loses none.
    """
    from kombu.exceptions import OperationalError
    from redis.exceptions import RedisError

    try:
        app.send_task(task_name, args=args, queue=broker_queue(queue), retry=False, connection=_publish_connection())
    except (OperationalError, OSError, RedisError) as exc:
        _drop_publish_connection()
        logging.getLogger(__name__).warning("broker unavailable, %s(%s) left for the sweep: %s", task_name, args, exc)
        return False
    return True

import os

from celery import Celery, bootsteps, signals

from core import liveness

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

class NoticeStopRequestsWithinASecond(bootsteps.StartStopStep):
    """Keep a one-second timer on the worker's event loop, so SIGTERM/SIGINT stop it promptly.

    A signal only sets a flag that the loop reads between polls, and an interrupted poll is
    resumed (PEP 475) for as long as the next timer is away: up to 10 s (kombu's cap) when
    nothing else is scheduled. On RabbitMQ that was the AMQP heartbeat check, so an idle
    worker took up to 10 s to notice a stop and outlived docker's and make run's grace period.
    """

    requires = {"celery.worker.components:Hub"}

    def include_if(self, worker) -> bool:
        return worker.use_eventloop

    def start(self, worker) -> None:
        worker.hub.call_repeatedly(1.0, _nothing)


def _nothing() -> None:
    pass


app = Celery("herald")
app.steps["worker"].add(NoticeStopRequestsWithinASecond)
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
app.autodiscover_tasks(["config"], related_name="gauges")
liveness.connect()


def _serve_metrics(**kwargs) -> None:
    from config.metrics_http import serve_process_metrics

    serve_process_metrics()


def _serve_beat_metrics(sender, **kwargs) -> None:
    """A beat of its own serves its metrics; one embedded in a worker (`-B`, a child process) leaves the port to the worker."""
    import multiprocessing

    if multiprocessing.current_process().name == "MainProcess":
        _serve_metrics()


def _json_logs(logger, **kwargs) -> None:
    from core.logs import use_for_celery

    use_for_celery(logger)


def _beat_ticks(sender, **kwargs) -> None:
    """herald_beat_last_tick_timestamp_seconds after each of beat's ticks (an alert says when it stops)."""
    import time

    from core import metrics

    scheduler = sender.scheduler
    tick = scheduler.tick

    def tick_and_count(*args, **kwargs):
        interval = tick(*args, **kwargs)
        metrics.beat_ticked(time.time())
        return interval

    scheduler.tick = tick_and_count


signals.worker_ready.connect(_serve_metrics, weak=False, dispatch_uid="herald-metrics-worker")
signals.beat_init.connect(_serve_beat_metrics, weak=False, dispatch_uid="herald-metrics-beat")
signals.beat_init.connect(_beat_ticks, weak=False, dispatch_uid="herald-metrics-beat-ticks")
signals.after_setup_logger.connect(_json_logs, weak=False, dispatch_uid="herald-json-logs")
signals.after_setup_task_logger.connect(_json_logs, weak=False, dispatch_uid="herald-json-task-logs")

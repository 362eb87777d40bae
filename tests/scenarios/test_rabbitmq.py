"""RabbitMQ as the broker: real workers (`python -m config.worker`, as compose starts them) on amqp.

Skipped when nothing listens on 127.0.0.1:5672 (guest/guest). Each session uses a vhost of its
own when rabbitmqctl is available, else the default vhost with queue prefixes of its own.
"""

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from celery import Celery
from kombu import Queue

from tests.factories import delivery_of, make_recipient, make_templates, notification_body, status_of
from tests.services import ROOT, subprocess_env, wait_for

RABBITMQ = ("127.0.0.1", 5672)


def rabbitmq_listening() -> bool:
    try:
        socket.create_connection(RABBITMQ, timeout=1).close()
        return True
    except OSError:
        return False


pytestmark = pytest.mark.skipif(not rabbitmq_listening(), reason="RabbitMQ is not listening on 127.0.0.1:5672")


def rabbitmqctl(*args: str) -> bool:
    try:
        return subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


@pytest.fixture(scope="module")
def amqp_url():
    vhost = f"herald-test-{os.getpid()}"
    if rabbitmqctl("add_vhost", vhost) and rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"):
        yield f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
        rabbitmqctl("delete_vhost", vhost)
    else:
        yield "amqp://guest:guest@127.0.0.1:5672//"


class AmqpWorker:
    """`python -m config.worker LANE` on RabbitMQ, with its queues under `prefix`."""

    def __init__(self, amqp_url: str, prefix: str, logdir: Path, lane: str = "urgent", beat: bool = False):
        self.log_path = logdir / f"worker-{prefix}.log"
        self.env = subprocess_env(application_name=f"herald-test-amqp-{prefix}", HERALD_TEST_CELERY_BROKER_URL=amqp_url,
                                  HERALD_QUEUE_PREFIX=prefix, HERALD_WORKER_CONCURRENCY="2")
        extra = ["-B", "-s", str(logdir / f"beat-{prefix}")] if beat else []
        self.process = subprocess.Popen([sys.executable, "-m", "config.worker", lane, *extra], cwd=ROOT, env=self.env,
                                        stdout=self.log_path.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
        wait_for(self._ready, 60, 0.1, message=f"worker {prefix} on RabbitMQ (log: {self.log_path})")

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"worker exited with {self.process.returncode}:\n{self.log()[-3000:]}")
        return " ready." in self.log()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)


@pytest.fixture
def start_worker(amqp_url, tmp_path):
    started: list[AmqpWorker] = []

    def start(prefix: str, **kwargs) -> AmqpWorker:
        started.append(AmqpWorker(amqp_url, prefix, tmp_path, **kwargs))
        return started[-1]

    yield start
    for worker in started:
        worker.stop()


def unique_prefix() -> str:
    return f"t{uuid.uuid4().hex[:8]}"


def test_a_notification_is_delivered_end_to_end_through_rabbitmq(no_worker, transactional_db, api, start_worker):
    # given no worker on the test's Redis broker, and one urgent worker with beat on RabbitMQ
    make_templates()
    make_recipient("u1")
    worker = start_worker(unique_prefix(), beat=True)

    # when a transaction notification is accepted
    response = api.post("/api/v1/notifications", notification_body(channels=["sms"]), format="json")
    assert response.status_code == 202, response.content
    notification_id = response.json()["id"]

    # then the worker on RabbitMQ routes it and sends it (beat's relay publishes it there)
    wait_for(lambda: status_of(notification_id) == "sent", timeout=60, message="the notification to be sent through RabbitMQ")
    assert delivery_of(notification_id, "sms").provider == "sandbox"
    log = worker.log()
    assert "notifications.tasks.route_lane" in log and "delivery.tasks.deliver_lane" in log


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_worker_on_rabbitmq_stops_within_ten_seconds_of_a_stop_signal(start_worker, signum, django_db_setup):
    worker = start_worker(unique_prefix())
    time.sleep(1)  # past start-up, into the idle event loop whose wait the stop must cut short

    started = time.monotonic()
    os.kill(worker.process.pid, signum)  # what docker stop and make run send, to the process alone
    worker.process.wait(timeout=30)
    seconds = time.monotonic() - started

    # Within 10 s with room to spare: before config/celery.py's one-second timer an idle worker
    # noticed the signal only when kombu's 10 s poll ran out (8.4-9.1 s measured).
    assert seconds < 5, f"stopped after {seconds:.1f}s"
    assert "Warm shutdown" in worker.log()


def installation(prefix: str) -> Celery:
    """A publisher configured as Herald's settings configure one installation (config/settings.py, core/queues.py)."""
    app = Celery()
    app.conf.task_default_queue = f"{prefix}.medium"
    app.conf.task_queues = [Queue(f"{prefix}.{lane}", routing_key=f"{prefix}.{lane}") for lane in ("critical", "medium")]
    return app


def queue_depth(amqp_url: str, queue: str) -> int:
    # The URL is passed: Celery would prefer CELERY_BROKER_URL, the test session's Redis broker.
    with Celery().connection_for_write(amqp_url) as connection:
        return connection.default_channel.queue_declare(queue, passive=True).message_count


def test_two_installations_with_different_prefixes_on_one_vhost_take_only_their_own_tasks(amqp_url, start_worker, django_db_setup):
    # given two installations' workers on the same vhost
    ours, theirs = unique_prefix(), unique_prefix()
    our_worker, their_worker = start_worker(ours), start_worker(theirs)

    # when a task is published to each installation's critical queue
    for_us, for_them = f"for-{ours}-{uuid.uuid4()}", f"for-{theirs}-{uuid.uuid4()}"
    for prefix, task_id in ((ours, for_us), (theirs, for_them)):
        app = installation(prefix)
        with app.connection_for_write(amqp_url) as connection:
            app.send_task("notifications.tasks.relay_outbox", queue=f"{prefix}.critical", task_id=task_id, connection=connection)

    # then each worker runs its own task, and both queues are drained: neither took the other's
    wait_for(lambda: f"[{for_us}] succeeded" in our_worker.log(), 30, message="our task to run on our worker")
    wait_for(lambda: f"[{for_them}] succeeded" in their_worker.log(), 30, message="their task to run on their worker")
    assert for_them not in our_worker.log() and for_us not in their_worker.log()
    assert queue_depth(amqp_url, f"{ours}.critical") == queue_depth(amqp_url, f"{theirs}.critical") == 0

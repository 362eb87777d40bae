"""Queue names: installations sharing a broker differ by HERALD_QUEUE_PREFIX everywhere a queue is named."""

import json
import os
import subprocess
import sys

from tests.services import ROOT

SHOW_QUEUES = """
import json
from django.conf import settings
from core import queues, wake
print(json.dumps({
    "celery": [q.name for q in settings.CELERY_TASK_QUEUES],
    "urgent": queues.URGENT_QUEUES, "bulk": queues.BULK_QUEUES,
    "default": settings.CELERY_TASK_DEFAULT_QUEUE,
    "beat": sorted({entry["options"]["queue"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}),
    "wake_flag": wake._flag("deliver:sms.urgent"),
}))
"""


def queue_names(prefix: str | None) -> dict:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "DJANGO_SECRET_KEY": "unit",
           "DATABASE_URL": "postgresql://unused@127.0.0.1:1/unused", "REDIS_URL": "redis://127.0.0.1:1/0"}
    env.pop("HERALD_QUEUE_PREFIX", None)
    if prefix is not None:
        env["HERALD_QUEUE_PREFIX"] = prefix
    out = subprocess.run([sys.executable, "-c", SHOW_QUEUES], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_without_a_prefix_queues_are_named_by_their_lane():
    names = queue_names(None)

    assert "sms.urgent" in names["celery"] and "critical" in names["urgent"] and "low" in names["bulk"]
    assert names["default"] == "medium"
    assert names["wake_flag"] == "herald:wake:deliver:sms.urgent"


def test_a_prefix_renames_every_queue_workers_consume_beat_publishes_to_and_every_wake_up_flag():
    names = queue_names("acme")

    every_queue = names["celery"] + names["urgent"] + names["bulk"] + [names["default"]] + names["beat"]
    assert all(name.startswith("acme.") for name in every_queue), every_queue
    assert set(names["urgent"]) | set(names["bulk"]) == set(names["celery"])
    assert set(names["beat"]) <= set(names["celery"])
    assert names["wake_flag"] == "herald:wake:acme:deliver:sms.urgent"

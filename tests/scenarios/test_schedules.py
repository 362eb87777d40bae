"""Recurring schedules fired by two beat processes at once and a worker SIGKILLed while firing:
each occurrence becomes exactly one notification and at most one Twilio call."""

import subprocess
import sys
from collections import Counter
from datetime import timedelta

import pytest
from django.utils import timezone

from delivery.models import Delivery
from notifications.models import Notification
from preferences.models import Recipient
from schedules import recurrence
from schedules.models import Schedule, ScheduleRun
from tests.factories import make_templates
from tests.services import ROOT, stop_process_group, wait_for

PEOPLE = 20


@pytest.fixture
def two_beats(workers, providers, provider_env, tmp_path):
    """A worker firing schedules in chunks of two, its own beat, and a second beat process beside it."""
    worker = workers.use("schedules", {**provider_env, "HERALD_SCHEDULE_INTERVAL": "0.2", "HERALD_SCHEDULE_CHUNK": "2",
                                       "HERALD_WORKER_CONCURRENCY": "4", "HERALD_RATE_LIMITS": ""})
    log = (tmp_path / "second-beat.log").open("w")
    second = subprocess.Popen([sys.executable, "-m", "celery", "-A", "config", "beat", "-s", str(tmp_path / "beat-schedule"),
                               "--loglevel", "INFO"], cwd=ROOT, env=worker.env, stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)
    worker.second_beat_log = tmp_path / "second-beat.log"
    yield worker
    stop_process_group(second)


@pytest.mark.timeout(240)
def test_two_beats_and_a_killed_worker_fire_each_occurrence_exactly_once(api, two_beats, providers):
    # given twenty people, each with an every-minute SMS schedule whose occurrences were missed for three minutes
    make_templates()
    phones = {f"s{n}": f"+1415555{n:04d}" for n in range(PEOPLE)}
    Recipient.objects.bulk_create([Recipient(external_id=user_id, phone=phone) for user_id, phone in phones.items()])
    for user_id in phones:
        response = api.post("/api/v1/schedules", {"cron": "* * * * *", "timezone": "UTC", "notification": {
            "user_id": user_id, "type": "transaction", "template": "welcome", "variables": {"name": user_id},
            "channels": ["sms"]}}, format="json")
        assert response.status_code == 201, response.content
    missed = (timezone.now() - timedelta(minutes=3)).replace(second=0, microsecond=0)
    Schedule.objects.update(starts_at=missed, next_occurrence=recurrence.occurrence_key(missed.replace(tzinfo=None)), next_run_at=missed)

    # when both beats send sweeps, and the worker is SIGKILLed while the first occurrences fire
    wait_for(lambda: ScheduleRun.objects.exists(), 30, 0.005, message="firing under way")
    two_beats.kill()
    fired_before_the_kill = ScheduleRun.objects.count()
    two_beats.start()

    # then each schedule fires the latest missed occurrence once, then the next minute's once
    wait_for(lambda: min(Counter(ScheduleRun.objects.values_list("schedule_id", flat=True)).values(), default=0) >= 2
             and Schedule.objects.count() == len(set(ScheduleRun.objects.values_list("schedule_id", flat=True))),
             150, 0.2, message="two occurrences of every schedule")
    Schedule.objects.update(state=Schedule.State.PAUSED)  # a slow machine may reach the next minute: that one is not this test's
    for schedule in Schedule.objects.all():
        occurrences = sorted(schedule.runs.values_list("occurrence", flat=True))
        assert all(recurrence.from_key(b) - recurrence.from_key(a) >= timedelta(minutes=1)
                   for a, b in zip(occurrences, occurrences[1:]))
        assert schedule.runs.get(occurrence=occurrences[0]).skipped_before >= 2
    notifications = Notification.objects.filter(schedule_id__isnull=False)
    assert notifications.count() == ScheduleRun.objects.count()
    assert {n.idempotency_key for n in notifications} == {
        f"schedule:{run.schedule_id}:{run.occurrence}" for run in ScheduleRun.objects.all()}
    assert set(ScheduleRun.objects.values_list("notification_id", flat=True)) == {n.pk for n in notifications}

    # and the provider was asked at most once per occurrence: once for every SMS recorded as sent
    wait_for(lambda: not Delivery.objects.filter(status__in=["queued", "sending"]).exists(), 60, 0.2, message="every SMS settled")
    calls = Counter(request["body"]["To"] for request in providers.requests("twilio"))
    sent = Counter(Delivery.objects.filter(status__in=["sent", "delivered"]).values_list("notification__recipient__phone", flat=True))
    assert calls == sent
    assert max(calls.values()) == max(Counter(ScheduleRun.objects.values_list("schedule_id", flat=True)).values())
    assert sum(sent.values()) >= ScheduleRun.objects.count() - 2  # a kill mid-call can lose an answer, never add a message
    assert fired_before_the_kill < 2 * PEOPLE
    assert "schedules.tasks.fire_due" in two_beats.second_beat_log.read_text()  # the second beat was sweeping too

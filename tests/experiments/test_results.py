"""Results within a time limit: a count too slow for a request falls back to the latest snapshot."""

import pytest
from django.db import connection
from django.utils import timezone

from core.errors import ApiError
from experiments import results
from experiments.models import Experiment, Snapshot
from templates_app.models import MessageTemplate


def slow_compute(experiment, previous):
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_sleep(5)")
    return {}


@pytest.fixture
def experiment(db):
    template = MessageTemplate.objects.create(name="promo", category="marketing")
    return Experiment.objects.create(name="x", template=template, channel="email", metric="clicked",
                                     arms=[{"key": "A", "version": 1, "weight": 100}])


def test_results_too_slow_to_count_are_the_latest_snapshot_with_its_time(experiment, monkeypatch):
    taken = Snapshot.objects.create(experiment=experiment, taken_at=timezone.now(), results={"arms": [], "winner": None})
    monkeypatch.setattr(results, "compute", slow_compute)

    shown = results.compute_within(experiment, None, 0.2)

    assert shown == {"arms": [], "winner": None, "as_of": taken.taken_at.isoformat()}


def test_results_too_slow_to_count_without_a_snapshot_are_a_503(experiment, monkeypatch):
    monkeypatch.setattr(results, "compute", slow_compute)

    with pytest.raises(ApiError) as raised:
        results.compute_within(experiment, None, 0.2)

    assert raised.value.status_code == 503

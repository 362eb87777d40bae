"""Arms by hash: shares follow the weights, the same person always lands the same way, and stays."""

import os
import subprocess
import sys
from collections import Counter

import pytest

from experiments.assignment import arm_at, arms_for, bucket
from experiments.models import Assignment, Experiment
from templates_app.models import MessageTemplate, TemplateVersion
from tests.factories import make_recipient

ARMS = [{"key": "A", "version": 1, "weight": 50}, {"key": "B", "version": 2, "weight": 30}, {"key": "holdout", "version": None, "weight": 20}]


def test_over_100000_people_each_arms_share_is_within_one_point_of_its_weight():
    shares = Counter(arm_at(ARMS, bucket(7, f"person-{n}")) for n in range(100_000))

    for arm in ARMS:
        assert abs(shares[arm["key"]] / 1000 - arm["weight"]) <= 1.0, shares


def test_the_same_person_gets_the_same_bucket_in_another_process():
    here = [bucket(42, f"person-{n}") for n in range(50)]
    code = ("import django; django.setup(); from experiments.assignment import bucket; "
            "print([bucket(42, f'person-{n}') for n in range(50)])")
    there = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={**os.environ, "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE", "config.settings")},
                           ).stdout.strip()

    assert str(here) == there


@pytest.mark.django_db
def test_a_person_keeps_their_arm_when_the_weights_change():
    template = MessageTemplate.objects.create(name="promo", current_version=1)
    for number in (1, 2):
        TemplateVersion.objects.create(template=template, number=number, contents=[], published_at="2026-01-01T00:00Z")
    experiment = Experiment.objects.create(name="e", template=template, channel="email", status="running",
                                           arms=[{"key": "A", "version": 1, "weight": 50}, {"key": "B", "version": 2, "weight": 50}])
    people = [make_recipient(f"w{n}") for n in range(200)]
    before = arms_for([(p.pk, p.external_id, "promo") for p in people])

    experiment.arms = [{"key": "A", "version": 1, "weight": 1}, {"key": "B", "version": 2, "weight": 99}]
    experiment.save()
    newcomer = make_recipient("w-new")
    after = arms_for([(p.pk, p.external_id, "promo") for p in [*people, newcomer]])

    assert {k: c.arm for k, c in before.items()} == {k: c.arm for k, c in after.items() if k[0] != newcomer.pk}
    assert Counter(c.arm for c in before.values())["A"] > 60  # both arms really were in use
    assert Assignment.objects.filter(experiment=experiment).count() == 201
    assert after[(people[0].pk, "promo", "email")].version in (1, 2)

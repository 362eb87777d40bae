"""Experiments over the REST API, and what routing and results make of them (in-process, real PostgreSQL)."""

import html
import re
from datetime import timedelta

import pytest
from django.contrib.admin.models import LogEntry
from django.utils import timezone

from delivery.models import Delivery
from experiments import results
from experiments.models import Decision, Experiment, Exposure
from notifications import routing
from notifications.models import Notification
from templates_app.models import MessageTemplate, Template
from tests.factories import make_recipient

SCHEMA = {"type": "object", "properties": {"name": {"type": "string", "examples": ["Ada"]}}}


def versions(api, name="promo", count=2, category="marketing"):
    for n in range(1, count + 1):
        created = api.post(f"/api/v1/templates/{name}/versions", {
            "contents": [{"channel": "email", "subject": f"Offer {n}", "body": f"Version {n} for {{{{ name }}}}"},
                         {"channel": "sms", "body": f"SMS {n}"}],
            "variables_schema": SCHEMA, "category": category}, format="json")
        assert created.status_code == 201, created.content
        api.post(f"/api/v1/templates/{name}/versions/{n}/publish")


def experiment(api, **overrides):
    body = {"name": "subject test", "template": "promo", "channel": "email", "metric": "clicked",
            "arms": [{"key": "A", "version": 1, "weight": 45}, {"key": "B", "version": 2, "weight": 45},
                     {"key": "holdout", "version": None, "weight": 10}], **overrides}
    return api.post("/api/v1/experiments", body, format="json")


@pytest.mark.django_db
@pytest.mark.parametrize(("override", "status", "field"), [
    ({"arms": [{"version": 1, "weight": 50}, {"version": 2, "weight": 40}]}, 400, "arms"),
    ({"arms": [{"version": 1, "weight": 50}, {"version": 7, "weight": 50}]}, 400, "arms.1.version"),
    ({"arms": [{"version": None, "weight": 50}, {"version": 1, "weight": 50}]}, 400, "arms.0.version"),
    ({"template": "other"}, 400, "template"),
    ({"channel": "push"}, 400, "arms.0.version"),
    ({"metric": "liked"}, 400, "metric"),
    ({"arms": [{"version": 1, "weight": 100}, {"version": 2, "weight": 0}]}, 400, "arms.1.weight"),
    ({"arms": [{"key": "<b>" * 20, "version": 1, "weight": 50}, {"version": 2, "weight": 50}]}, 400, "arms.0.key"),
])
def test_bad_experiments_are_refused_naming_the_field(api, override, status, field):
    versions(api)
    response = experiment(api, **override)

    assert response.status_code == status, response.content
    assert response.json()["error"]["field"] == field


@pytest.mark.django_db
def test_arms_of_another_template_and_a_holdout_on_a_required_category_are_refused(api):
    versions(api)
    versions(api, name="reset", count=1, category="security")

    foreign = api.post("/api/v1/experiments", {"name": "x", "template": "reset", "channel": "email",
                                               "arms": [{"version": 1, "weight": 50}, {"version": 2, "weight": 50}]}, format="json")
    holdout = api.post("/api/v1/experiments", {"name": "x", "template": "reset", "channel": "email",
                                               "arms": [{"version": 1, "weight": 90}, {"version": None, "weight": 10}]}, format="json")

    assert (foreign.status_code, foreign.json()["error"]["field"]) == (400, "arms.1.version")
    assert (holdout.status_code, holdout.json()["error"]["field"]) == (400, "arms")


@pytest.mark.django_db
@pytest.mark.parametrize("category", ["transaction", "reminder", "security", ""])
def test_a_holdout_is_refused_on_categories_people_count_on(api, category):
    versions(api, name="receipt", count=2, category=category)

    response = experiment(api, template="receipt")

    assert (response.status_code, response.json()["error"]["field"]) == (400, "arms"), response.content


@pytest.mark.django_db
def test_a_holdout_holds_back_at_most_half_the_people(api):
    versions(api)

    response = experiment(api, arms=[{"key": "A", "version": 1, "weight": 0.01}, {"key": "holdout", "version": None, "weight": 99.99}])
    allowed = experiment(api, arms=[{"key": "A", "version": 1, "weight": 50}, {"key": "holdout", "version": None, "weight": 50}])

    assert (response.status_code, response.json()["error"]["field"]) == (400, "arms")
    assert allowed.status_code == 201, allowed.content
    assert api.patch(f"/api/v1/experiments/{allowed.json()['id']}", {"arms": [
        {"key": "A", "weight": 40}, {"key": "holdout", "weight": 60}]}, format="json").status_code == 400


@pytest.mark.django_db
def test_staff_without_view_permission_cannot_see_an_experiments_results(api, client, django_user_model):
    versions(api)
    created = experiment(api).json()
    django_user_model.objects.create_user("staff", password="pw-staff-1", is_staff=True)
    client.login(username="staff", password="pw-staff-1")

    assert client.get(f"/admin/experiments/experiment/{created['id']}/results/").status_code == 403
    assert client.post(f"/admin/experiments/experiment/{created['id']}/act/", {"action": "pause"}).status_code == 403


@pytest.mark.django_db
def test_only_one_experiment_runs_on_a_template_and_channel(api):
    versions(api)
    first, second = experiment(api).json()["id"], experiment(api).json()["id"]

    assert api.post(f"/api/v1/experiments/{first}/start").status_code == 200
    refused = api.post(f"/api/v1/experiments/{second}/start")

    assert (refused.status_code, refused.json()["error"]["code"]) == (409, "experiment_running")
    assert api.post(f"/api/v1/experiments/{first}/pause").json()["status"] == "paused"
    assert api.post(f"/api/v1/experiments/{second}/start").status_code == 200


@pytest.mark.django_db(transaction=True)
def test_routing_sends_each_person_their_arms_version_and_holds_the_holdout_back(api, broker):
    versions(api)
    experiment_id = experiment(api).json()["id"]
    api.post(f"/api/v1/experiments/{experiment_id}/start")
    people = [make_recipient(f"x{n}") for n in range(60)]
    notifications = [Notification.objects.create(recipient=p, type="social", priority="high", template_name="promo",
                                                 variables={"name": p.external_id}, status="queued", requested_channels=["email"])
                     for p in people]

    for notification in notifications:
        routing.route(notification.pk)

    exposures = {e.notification_id: e.arm for e in Exposure.objects.filter(experiment_id=experiment_id)}
    assert len(exposures) == 60 and set(exposures.values()) == {"A", "B", "holdout"}
    for notification in notifications:
        notification.refresh_from_db()
        arm = exposures[notification.pk]
        delivery = Delivery.objects.filter(notification=notification).first()
        if arm == "holdout":
            assert delivery is None and notification.status == "canceled"
            assert notification.skipped_channels == [{"channel": "email", "reason": "experiment_holdout", "experiment": experiment_id}]
        else:
            assert (delivery.experiment_arm, delivery.template_version) == (arm, {"A": 1, "B": 2}[arm])
    # a transaction message to a person in the holdout is still sent, and not counted in the experiment
    held_out = next(n.recipient for n in notifications if exposures[n.pk] == "holdout")
    receipt = Notification.objects.create(recipient=held_out, type="transaction", priority="high", template_name="promo",
                                          variables={"name": "receipt"}, status="queued", requested_channels=["email"])
    routing.route(receipt.pk)
    assert Delivery.objects.filter(notification=receipt).exists()
    assert not Exposure.objects.filter(notification_id=receipt.pk).exists()


def seeded_experiment(api, people: int = 200, clicks_in_ten: dict | None = None, **overrides) -> Experiment:
    """A running A/B experiment with `people` split between the arms, each sent the email, and
    clicked `clicks_in_ten[arm]` times in ten."""
    clicks_in_ten = clicks_in_ten or {"A": 2, "B": 3}
    versions(api)
    overrides.setdefault("min_sample", 50)
    created = experiment(api, arms=[{"key": "A", "version": 1, "weight": 50}, {"key": "B", "version": 2, "weight": 50}],
                         **overrides).json()
    api.post(f"/api/v1/experiments/{created['id']}/start")
    exp = Experiment.objects.get(pk=created["id"])
    for n in range(people):
        person = make_recipient(f"z{n}")
        arm = "A" if n % 2 else "B"
        notification = Notification.objects.create(recipient=person, type="transaction", template_name="promo", status="sent")
        Exposure.objects.create(experiment=exp, notification_id=notification.pk, recipient_id=person.pk, arm=arm,
                                exposed_at="2026-11-27T00:00Z")
        clicked = "2026-11-27T01:00Z" if n // 2 % 10 < clicks_in_ten[arm] else None
        Delivery.objects.create(notification=notification, channel="email", status="read" if clicked else "sent",
                                sent_at="2026-11-27T00:00Z", clicked_at=clicked, read_at=clicked, experiment_arm=arm)
    return exp


@pytest.mark.django_db(transaction=True)
def test_a_significant_winner_is_auto_promoted_with_an_audit_row(api, broker):
    # given 400 people a side were sent the email; B's were clicked far more often (5 in 10 against 1)
    exp = seeded_experiment(api, people=800, clicks_in_ten={"A": 1, "B": 5}, auto_promote=True, min_sample=100)

    snapshot = results.review(exp)

    assert snapshot.results["winner"] == "B"
    exp.refresh_from_db()
    assert (exp.status, exp.winner) == ("completed", "B")
    assert MessageTemplate.objects.get(name="promo").current_version == 2
    assert Template.objects.get(name="promo", channel="email").subject == "Offer 2"
    decision = Decision.objects.get(experiment=exp, kind="promoted")
    assert (decision.detail["arm"], decision.detail["version"], decision.actor) == ("B", 2, "auto-promotion")
    detail = api.get(f"/api/v1/experiments/{exp.pk}").json()
    arms = {a["key"]: a for a in detail["results"]["arms"]}
    assert (arms["A"]["sent"], arms["A"]["clicked"], arms["B"]["clicked"]) == (400, 40, 200)
    assert detail["results"]["sample_ratio"]["mismatch"] is False


@pytest.mark.django_db(transaction=True)
def test_the_bandit_moves_weight_toward_the_better_arm_and_keeps_the_floor(api, broker):
    exp = seeded_experiment(api, mode="bandit", bandit_floor=0.1)
    results.review(exp)  # within the first interval: the weights stay
    assert [arm["weight"] for arm in Experiment.objects.get(pk=exp.pk).arms] == [50, 50]
    Experiment.objects.filter(pk=exp.pk).update(started_at=timezone.now() - timedelta(hours=2))
    exp.refresh_from_db()

    results.review(exp)

    exp.refresh_from_db()
    weights = {arm["key"]: arm["weight"] for arm in exp.arms}
    assert weights["B"] > weights["A"] >= 10 and sum(weights.values()) == pytest.approx(100)
    assert Decision.objects.get(experiment=exp, kind="reweighted").detail["weights"] == weights


@pytest.mark.django_db(transaction=True)
def test_the_results_page_shows_the_table_and_a_chart_and_declares_a_winner(api, broker, admin_client):
    exp = seeded_experiment(api)
    results.take_snapshot(exp)
    results.take_snapshot(exp)

    page = admin_client.get(f"/admin/experiments/experiment/{exp.pk}/results/").content.decode()
    assert 'tr data-arm="A"' in page and "<svg" in page and "polyline" in page
    breadcrumbs = re.sub(r"\s+", " ", re.search(r'<div class="breadcrumbs">(.*?)</div>', page, re.S).group(1))
    assert html.unescape(re.sub(r"<[^>]+>", "", breadcrumbs)).strip() == f"Home › Experiments › Experiments › {exp} › Results"

    admin_client.post(f"/admin/experiments/experiment/{exp.pk}/act/", {"action": "winner", "arm": "B"})
    exp.refresh_from_db()
    assert (exp.status, exp.winner) == ("completed", "B")
    assert MessageTemplate.objects.get(name="promo").current_version == 2
    assert Decision.objects.get(experiment=exp, kind="promoted").actor == "admin"
    assert LogEntry.objects.get(object_id=str(exp.pk)).change_message == "winner B"  # who and when, in its history


@pytest.mark.django_db
def test_a_published_version_cannot_be_sent_by_naming_it_in_metadata(api):
    versions(api)
    make_recipient("m1")

    response = api.post("/api/v1/notifications", {"user_id": "m1", "type": "transaction", "template": "promo",
                                                   "metadata": {"herald_template_version": 1}}, format="json")

    assert (response.status_code, response.json()["error"]["field"]) == (400, "metadata.herald_template_version")


@pytest.mark.django_db
def test_the_sample_ratio_check_counts_only_people_assigned_since_the_weights_changed(api):
    versions(api)
    created = experiment(api, arms=[{"key": "A", "version": 1, "weight": 50}, {"key": "B", "version": 2, "weight": 50}]).json()
    api.post(f"/api/v1/experiments/{created['id']}/start")
    exp = Experiment.objects.get(pk=created["id"])
    from experiments.models import Assignment
    Assignment.objects.bulk_create([Assignment(experiment=exp, recipient_id=n, arm="AB"[n % 2], assigned_at=timezone.now())
                                    for n in range(2000)])
    api.patch(f"/api/v1/experiments/{exp.pk}", {"arms": [{"key": "A", "weight": 10}, {"key": "B", "weight": 90}]}, format="json")
    Assignment.objects.bulk_create([Assignment(experiment=exp, recipient_id=10_000 + n, arm="A" if n % 10 == 0 else "B",
                                               assigned_at=timezone.now()) for n in range(1000)])

    results_now = api.get(f"/api/v1/experiments/{exp.pk}").json()["results"]

    assert results_now["sample_ratio"]["mismatch"] is False

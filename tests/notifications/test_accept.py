"""POST /api/v1/notifications: validation, idempotency and the cost of accepting."""

import json
import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from notifications.models import ApiKey, Notification
from tests.factories import make_recipient, make_templates, notification_body


@pytest.fixture
def ready(transactional_db):
    make_templates()
    make_recipient("u1")


def post(api, body, **extra):
    return api.post("/api/v1/notifications", body, format="json", **extra)


def error_of(response) -> dict:
    return response.json()["error"]


def test_accepting_answers_202_with_id_status_and_time(api, ready, broker):
    response = post(api, notification_body())

    assert response.status_code == 202
    body = response.json()
    assert set(body) == {"id", "status", "created_at", "scheduled_at"}
    assert body["status"] == "pending"  # until routing claims it
    assert response["Location"] == f"/api/v1/notifications/{body['id']}"


def test_priority_defaults_by_type_and_can_be_overridden(api, ready, broker):
    expected = {"security": "critical", "transaction": "high", "social": "medium", "reminder": "medium", "marketing": "low"}
    for notification_type, priority in expected.items():
        notification_id = post(api, notification_body(type=notification_type)).json()["id"]
        assert Notification.objects.get(pk=notification_id).priority == priority
    notification_id = post(api, notification_body(type="marketing", priority="high")).json()["id"]
    assert Notification.objects.get(pk=notification_id).priority == "high"


def test_accepting_costs_two_statements_once_the_api_key_is_known(api, ready, broker):
    # given a key this process has already checked
    post(api, notification_body(idempotency_key="k-warm"))
    with CaptureQueriesContext(connection) as queries:
        # when another notification is accepted
        response = post(api, notification_body(idempotency_key="k-queries", channels=["email", "push"]))

    # then the recipient with the template's variants is read, and the notification and its outbox row written
    assert response.status_code == 202
    assert len(queries) == 2, "\n".join(q["sql"] for q in queries)
    assert "INSERT" in queries[1]["sql"] and "outbox" in queries[1]["sql"]


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        (notification_body(template="nope"), "template", "unknown_template"),
        (notification_body(variables={}), "variables.name", "invalid_variables"),
        (notification_body(variables={"name": 42}), "variables.name", "invalid_variables"),
        (notification_body(channels=["fax"]), "channels.0", "invalid_choice"),
        (notification_body(channels="email"), "channels", "not_a_list"),
        (notification_body(channels=[]), "channels", "empty"),
        (notification_body(channels=["email", "email"]), "channels", "invalid"),
        (notification_body(type="gossip"), "type", "invalid_choice"),
        (notification_body(priority="urgent"), "priority", "invalid_choice"),
        (notification_body(variables=["Ada"]), "variables", "not_a_dict"),
        (notification_body(metadata="x"), "metadata", "not_a_dict"),
        (notification_body(scheduled_at="yesterday"), "scheduled_at", "invalid"),
        (notification_body(scheduled_at=(timezone.now() - timedelta(minutes=1)).isoformat()), "scheduled_at", "in_the_past"),
        (notification_body(chanels=["email"]), "chanels", "unknown_field"),
        ({"type": "transaction", "template": "welcome"}, "user_id", "required"),
        (notification_body(template="Not a slug!"), "template", "invalid"),
        (notification_body(metadata={"collapse_key": 5}), "metadata.collapse_key", "invalid"),
        (notification_body(metadata={"ttl_seconds": "3600"}), "metadata.ttl_seconds", "invalid"),
    ],
)
def test_bad_input_is_refused_with_400_naming_the_field(api, ready, body, field, code):
    response = post(api, body)

    assert response.status_code == 400, response.content
    assert error_of(response)["field"] == field
    assert error_of(response)["code"] == code
    assert error_of(response)["message"]
    assert not Notification.objects.exists()


def test_a_channel_the_template_lacks_is_refused(api, db):
    make_templates(channels=("email",))
    make_recipient("u1")

    response = post(api, notification_body(channels=["sms"]))

    assert response.status_code == 400
    assert error_of(response) == {
        "code": "no_template_for_channel", "message": "Template 'welcome' has no sms variant.", "field": "channels",
    }


def test_an_unknown_user_is_404(api, ready):
    response = post(api, notification_body(user_id="ghost"))

    assert response.status_code == 404
    assert error_of(response)["field"] == "user_id"
    assert error_of(response)["code"] == "unknown_user"


def test_a_deactivated_user_is_refused(api, db):
    make_templates()
    make_recipient("gone", is_active=False)

    response = post(api, notification_body(user_id="gone"))

    assert response.status_code == 422
    assert error_of(response)["code"] == "user_inactive"


def test_malformed_json_is_400(api, ready):
    response = api.post("/api/v1/notifications", '{"user_id": "u1",', content_type="application/json")

    assert response.status_code == 400
    assert error_of(response)["code"] == "malformed_json"


def test_a_body_that_is_not_an_object_is_400(api, ready):
    response = api.post("/api/v1/notifications", "[1, 2]", content_type="application/json")

    assert response.status_code == 400
    assert error_of(response)["message"] == "Body must be a JSON object."


def test_a_form_body_is_415(api, ready):
    response = api.post("/api/v1/notifications", {"user_id": "u1"})

    assert response.status_code == 415
    assert error_of(response)["code"] == "unsupported_media_type"


def test_a_body_over_64_kib_is_413(api, ready):
    response = post(api, notification_body(variables={"name": "x" * 70_000}))

    assert response.status_code == 413
    assert error_of(response)["code"] == "payload_too_large"


def test_missing_invalid_and_revoked_keys_are_401(ready):
    revoked, revoked_raw = ApiKey.issue("old")
    revoked.revoked_at = timezone.now()
    revoked.save()
    client = APIClient()

    missing = client.post("/api/v1/notifications", notification_body(), format="json")
    invalid = client.post("/api/v1/notifications", notification_body(), format="json", HTTP_AUTHORIZATION="Bearer hk_nope")
    wrong_scheme = client.post("/api/v1/notifications", notification_body(), format="json", HTTP_AUTHORIZATION="Basic abc")
    revoked_response = client.post(
        "/api/v1/notifications", notification_body(), format="json", HTTP_AUTHORIZATION=f"Bearer {revoked_raw}"
    )

    for response in (missing, invalid, wrong_scheme, revoked_response):
        assert response.status_code == 401
        assert error_of(response)["code"] == "unauthorized"
        assert response["WWW-Authenticate"].startswith("Bearer")
    assert "revoked" in error_of(revoked_response)["message"]


def test_a_key_without_the_scope_is_403(ready):
    _, raw = ApiKey.issue("reader", ["notifications:read"])
    client = APIClient(HTTP_AUTHORIZATION=f"Bearer {raw}")

    response = client.post("/api/v1/notifications", notification_body(), format="json")

    assert response.status_code == 403
    assert error_of(response)["code"] == "insufficient_scope"


def test_the_same_idempotency_key_and_body_replays_the_original(api, ready, broker):
    first = post(api, notification_body(idempotency_key="order-1"))
    second = post(api, notification_body(idempotency_key="order-1"))
    by_header = post(api, notification_body(), HTTP_IDEMPOTENCY_KEY="order-1")

    assert first.status_code == second.status_code == by_header.status_code == 202
    assert first.json()["id"] == second.json()["id"] == by_header.json()["id"]
    assert second["Idempotent-Replayed"] == "true"
    assert Notification.objects.count() == 1


def test_the_same_idempotency_key_with_another_body_is_422(api, ready, broker):
    post(api, notification_body(idempotency_key="order-2"))

    response = post(api, notification_body(idempotency_key="order-2", variables={"name": "Grace"}))

    assert response.status_code == 422
    assert error_of(response)["code"] == "idempotency_key_reused"
    assert error_of(response)["field"] == "idempotency_key"
    assert Notification.objects.count() == 1


def test_header_and_body_keys_that_differ_are_400(api, ready):
    response = post(api, notification_body(idempotency_key="a"), HTTP_IDEMPOTENCY_KEY="b")

    assert response.status_code == 400
    assert error_of(response)["field"] == "idempotency_key"


def test_concurrent_duplicates_create_exactly_one_notification(transactional_db, broker, api_key):
    # given
    make_templates()
    make_recipient("u1")
    barrier = threading.Barrier(10)
    responses = []

    def send():
        client = APIClient(HTTP_AUTHORIZATION=f"Bearer {api_key[1]}")
        barrier.wait()
        responses.append(post(client, notification_body(idempotency_key="race")))
        connection.close()

    # when ten identical requests arrive at once
    threads = [threading.Thread(target=send) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # then
    assert [r.status_code for r in responses] == [202] * 10
    assert len({r.json()["id"] for r in responses}) == 1
    assert Notification.objects.count() == 1


def test_head_needs_the_same_scope_as_get(ready):
    _, raw = ApiKey.issue("writer", ["notifications:write"])
    client = APIClient(HTTP_AUTHORIZATION=f"Bearer {raw}")

    assert client.head("/api/v1/users/u1/notifications").status_code == 403


# --- POST /api/v1/notifications/batch ------------------------------------------------------

def post_batch(api, items):
    return api.post("/api/v1/notifications/batch", {"notifications": items}, format="json")


def test_a_batch_accepts_the_valid_items_and_names_the_index_and_field_of_each_refusal(api, ready, broker):
    make_recipient("u2")
    items = [
        notification_body(),
        notification_body(user_id="nobody"),
        notification_body(type="gossip"),
        notification_body(variables={}),
        notification_body(user_id="u2", idempotency_key="batch-k1"),
        notification_body(channels=["carrier-pigeon"]),
    ]

    response = post_batch(api, items)

    assert response.status_code == 202
    body = response.json()
    assert (body["accepted"], body["rejected"]) == (2, 4)
    results = body["results"]
    assert [r["index"] for r in results] == list(range(6))
    assert results[0]["status"] == "pending" and results[4]["status"] == "pending"
    assert (results[1]["error"]["code"], results[1]["error"]["field"]) == ("unknown_user", "notifications.1.user_id")
    assert results[2]["error"]["field"] == "notifications.2.type"
    assert results[3]["error"]["code"] == "invalid_variables"
    assert results[3]["error"]["field"].startswith("notifications.3.")
    assert results[5]["error"]["field"].startswith("notifications.5.channels")
    stored = Notification.objects.filter(pk__in=[results[0]["id"], results[4]["id"]])
    assert sorted(n.recipient.external_id for n in stored) == ["u1", "u2"]
    assert all(hasattr(n, "outbox") for n in stored)


def test_a_batch_repeating_an_idempotency_key_answers_with_the_original(api, ready, broker):
    first = post(api, notification_body(idempotency_key="batch-again")).json()["id"]

    results = post_batch(api, [
        notification_body(idempotency_key="batch-again"),
        notification_body(idempotency_key="batch-again", variables={"name": "Someone else"}),
        notification_body(idempotency_key="batch-new"),
        notification_body(idempotency_key="batch-new"),
    ]).json()["results"]

    # the original, as it stands now (a running worker may have started routing it)
    assert {key: results[0][key] for key in ("index", "id", "replayed")} == {"index": 0, "id": first, "replayed": True}
    assert results[0]["status"] in ("pending", "routing", "sending", "sent")
    assert results[1]["error"]["code"] == "idempotency_key_reused"
    assert results[2]["id"] == results[3]["id"] and results[3]["replayed"] is True
    assert Notification.objects.filter(idempotency_key="batch-new").count() == 1


def test_a_batch_over_the_limit_is_413_naming_the_limit(api, ready):
    response = post_batch(api, [notification_body()] * 1001)

    assert response.status_code == 413
    assert response.json()["error"]["field"] == "notifications"
    assert "1000" in response.json()["error"]["message"]
    assert not Notification.objects.exists()


def test_an_empty_or_malformed_batch_is_400(api, ready):
    assert post_batch(api, []).status_code == 400
    response = api.post("/api/v1/notifications/batch", {"notifications": "many"}, format="json")
    assert response.status_code == 400 and response.json()["error"]["field"] == "notifications"


VALID_ITEM = json.dumps({"user_id": "u1", "type": "transaction", "template": "welcome", "variables": {"name": "Ada"}})
# Raw JSON, since these cannot be written from Python objects (or not at all by json.dumps).
HOSTILE_ITEMS = {
    "a NUL in a string": ('{"user_id": "u1", "type": "transaction", "template": "welcome", "variables": {"name": "A\\u0000da"}}',
                          "notifications.1.variables.name"),
    "a lone surrogate": ('{"user_id": "u1", "type": "transaction", "template": "welcome", "variables": {"name": "\\ud800"}}',
                         "notifications.1.variables.name"),
    "a NUL in a key": ('{"user_id": "u1", "type": "transaction", "template": "welcome", "variables": {"na\\u0000me": "x"}}',
                       "notifications.1.variables"),
    "NaN": ('{"user_id": "u1", "type": "transaction", "template": "welcome", "variables": {"name": NaN}}',
            "notifications.1.variables.name"),
    "Infinity": ('{"user_id": "u1", "type": "transaction", "template": "welcome", "variables": {"name": -Infinity}}',
                 "notifications.1.variables.name"),
    "a number too large": ('{"user_id": "u1", "type": "transaction", "template": "welcome", "variables": {"name": 1e400}}',
                           "notifications.1.variables.name"),
    "nesting past the limit": ('{"user_id": "u1", "type": "transaction", "template": "welcome", "variables": {"name": '
                               + "[" * 100 + "]" * 100 + "}}", "notifications.1.variables.name"),
    "nesting too deep to parse": ('{"user_id": "u1", "variables": ' + "[" * 100_000 + "]" * 100_000 + "}",
                                  "notifications.1"),
    "not an object": ('"just a string"', "notifications.1"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_ITEMS))
def test_one_item_that_cannot_be_stored_is_refused_alone_and_the_others_are_accepted(api, ready, broker, case):
    hostile, field = HOSTILE_ITEMS[case]
    body = '{"notifications": [' + ", ".join([VALID_ITEM, hostile, VALID_ITEM.replace("Ada", "Grace")]) + "]}"

    response = api.generic("POST", "/api/v1/notifications/batch", body, content_type="application/json")

    assert response.status_code == 202, response.content
    results = response.json()["results"]
    assert (response.json()["accepted"], response.json()["rejected"]) == (2, 1)
    assert "id" in results[0] and "id" in results[2]
    assert results[1]["error"]["field"].startswith(field), results[1]
    assert Notification.objects.count() == 2

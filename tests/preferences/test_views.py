"""People, devices, preferences, export and erasure over the REST API."""

import threading
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from delivery.models import Delivery, DeliveryAttempt, SandboxMessage
from inbox.models import InboxItem
from notifications.models import Notification
from preferences.models import Device, Preferences, Recipient
from preferences.policy import decide
from preferences.unsubscribe import list_unsubscribe_headers, unsubscribe_url
from tests.factories import make_recipient


@pytest.mark.django_db
def test_put_creates_then_updates_a_user_keeping_fields_left_out(api):
    created = api.put("/api/v1/users/alice", {"email": "a@example.com", "timezone": "Europe/Berlin"}, format="json")
    updated = api.put("/api/v1/users/alice", {"phone": "+4915112345678", "locale": "de"}, format="json")

    assert created.status_code == 201
    assert updated.status_code == 200
    body = api.get("/api/v1/users/alice").json()
    assert body["email"] == "a@example.com"
    assert body["phone"] == "+4915112345678"
    assert body["timezone"] == "Europe/Berlin"
    assert body["locale"] == "de"
    assert body["active"] is True


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"phone": "0151 1234"}, "phone"),
        ({"email": "not-an-email"}, "email"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"locale": "english please"}, "locale"),
        ({"active": "maybe"}, "active"),
        ({"nickname": "al"}, "nickname"),
    ],
)
def test_bad_user_fields_are_400_naming_the_field(api, body, field):
    response = api.put("/api/v1/users/alice", body, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["field"] == field
    assert not Recipient.objects.exists()


@pytest.mark.django_db
def test_an_unknown_user_is_404_as_json(api):
    response = api.get("/api/v1/users/nobody")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


@pytest.mark.django_db
def test_devices_register_move_between_users_and_delete(api):
    make_recipient("a")
    make_recipient("b")

    first = api.post("/api/v1/users/a/devices", {"platform": "ios", "token": "abc"}, format="json")
    again = api.post("/api/v1/users/a/devices", {"platform": "ios", "token": "abc"}, format="json")
    moved = api.post("/api/v1/users/b/devices", {"platform": "ios", "token": "abc"}, format="json")

    assert (first.status_code, again.status_code, moved.status_code) == (201, 200, 200)
    assert Device.objects.get(token="abc").recipient.external_id == "b"
    assert api.delete("/api/v1/users/a/devices/abc").status_code == 404
    assert api.delete("/api/v1/users/b/devices/abc").status_code == 204
    assert not Device.objects.filter(token="abc").exists()


@pytest.mark.django_db
def test_a_device_with_an_unknown_platform_is_400(api):
    make_recipient("a")

    response = api.post("/api/v1/users/a/devices", {"platform": "palm", "token": "x"}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["field"] == "platform"


URL = "/api/v1/users/ada/preferences"


def patch(api, body: dict, version="0"):
    return api.patch(URL, body, format="json", HTTP_IF_MATCH=f'"{version}"')


# --- reading and writing -----------------------------------------------------------------------

@pytest.mark.django_db
def test_someone_who_chose_nothing_gets_the_category_defaults(api):
    make_recipient("ada", timezone="Europe/Berlin")

    response = api.get(URL)

    body = response.json()
    assert response.status_code == 200
    assert response["ETag"] == '"0"'
    assert body["version"] == 0
    assert body["enabled"] is True
    assert body["channels"] == {"email": True, "sms": True, "push": True, "in_app": True, "webhook": True}
    assert body["categories"]["security"] == {
        "enabled": True, "channels": ["push", "sms", "email"], "required": True, "opt_in": False,
        "unsubscribed_at": None, "digest": None, "respects_quiet_hours": False,
        "frequency_caps": {"hourly": None, "daily": None},
    }
    assert body["categories"]["marketing"]["enabled"] is False
    assert body["categories"]["marketing"]["frequency_caps"] == {"hourly": 2, "daily": 5}
    assert body["quiet_hours"] == {"enabled": False, "start": None, "end": None, "timezone": "Europe/Berlin"}


@pytest.mark.django_db
def test_a_patch_with_the_current_etag_changes_only_what_it_names(api):
    make_recipient("ada")

    first = patch(api, {"categories": {"marketing": {"enabled": True}}, "channels": {"sms": False}})
    second = patch(
        api, {"quiet_hours": {"enabled": True, "start": "22:00", "end": "07:00", "timezone": "America/New_York"}},
        version=first.json()["version"],
    )

    assert (first.status_code, second.status_code) == (200, 200)
    assert second["ETag"] == '"2"'
    body = api.get(URL).json()
    assert body["version"] == 2
    assert body["categories"]["marketing"]["enabled"] is True
    assert body["channels"]["sms"] is False
    assert body["quiet_hours"] == {"enabled": True, "start": "22:00", "end": "07:00", "timezone": "America/New_York"}
    assert api.get("/api/v1/users/ada").json()["timezone"] == "America/New_York"


@pytest.mark.django_db
def test_a_put_replaces_everything_and_leaves_out_means_default(api):
    make_recipient("ada")
    patch(api, {"enabled": False, "channels": {"sms": False}, "categories": {"social": {"channels": ["in_app"]}}})

    response = api.put(URL, {"categories": {"reminder": {"channels": ["email"]}}}, format="json", HTTP_IF_MATCH='"1"')

    body = response.json()
    assert response.status_code == 200
    assert body["enabled"] is True
    assert body["channels"]["sms"] is True
    assert body["categories"]["social"]["channels"] == ["push", "in_app"]
    assert body["categories"]["reminder"]["channels"] == ["email"]


@pytest.mark.django_db
def test_the_version_can_travel_in_the_body_instead_of_if_match(api):
    make_recipient("ada")

    response = api.patch(URL, {"version": 0, "enabled": False}, format="json")

    assert response.status_code == 200
    assert response.json()["enabled"] is False


@pytest.mark.django_db
def test_a_stale_version_is_412_and_changes_nothing(api):
    # given someone else already saved version 1
    make_recipient("ada")
    patch(api, {"channels": {"sms": False}})

    # when an editor still holding version 0 saves
    response = patch(api, {"enabled": False}, version="0")

    # then
    assert response.status_code == 412
    assert response["ETag"] == '"1"'
    assert response.json()["error"]["code"] == "version_mismatch"
    assert response.json()["error"]["current_version"] == 1
    row = Preferences.objects.get(recipient__external_id="ada")
    assert (row.version, row.enabled) == (1, True)


@pytest.mark.django_db
def test_an_update_without_if_match_or_version_is_428(api):
    make_recipient("ada")

    response = api.patch(URL, {"enabled": False}, format="json")

    assert response.status_code == 428
    assert response.json()["error"]["field"] == "If-Match"
    assert not Preferences.objects.exists()


@pytest.mark.django_db
def test_if_match_star_overwrites_whatever_is_stored(api):
    make_recipient("ada")
    patch(api, {"channels": {"sms": False}})

    response = api.patch(URL, {"enabled": False}, format="json", HTTP_IF_MATCH="*")

    assert response.status_code == 200
    assert response.json()["version"] == 2


@pytest.mark.django_db
def test_an_update_that_changes_nothing_keeps_the_version(api):
    make_recipient("ada")
    patch(api, {"channels": {"sms": False}})

    response = patch(api, {"channels": {"sms": False}}, version="1")

    assert response.json()["version"] == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "field", "named"),
    [
        ({"categories": {"promo": {"enabled": True}}}, "categories.promo", "promo"),
        ({"channels": {"fax": False}}, "channels.fax", "fax"),
        ({"categories": {"social": {"channels": ["push", "fax"]}}}, "categories.social.channels", "fax"),
        ({"categories": {"social": {"mute": True}}}, "categories.social.mute", None),
        ({"quiet_hours": {"enabled": True, "start": "22:00", "end": "07:00", "timezone": "Mars/Olympus"}},
         "quiet_hours.timezone", "Mars/Olympus"),
        ({"quiet_hours": {"enabled": True, "start": "25:00", "end": "07:00"}}, "quiet_hours.start", None),
        ({"quiet_hours": {"enabled": True, "start": "10pm", "end": "07:00"}}, "quiet_hours.start", None),
        ({"quiet_hours": {"enabled": True, "start": "07:00", "end": "07:00"}}, "quiet_hours.end", None),
        ({"quiet_hours": {"enabled": True, "start": "22:00"}}, "quiet_hours.end", None),
        ({"categories": {"security": {"enabled": False}}}, "categories.security.enabled", "security"),
        ({"categories": {"security": {"channels": ["email"]}}}, "categories.security.channels", "security"),
        ({"nickname": "ada"}, "nickname", None),
        ({"version": -1}, "version", None),
    ],
)
def test_bad_preferences_are_400_naming_the_field(api, body, field, named):
    make_recipient("ada")

    response = patch(api, body)

    error = response.json()["error"]
    assert response.status_code == 400
    assert error["field"] == field
    if named:
        assert named in error["message"]
    assert not Preferences.objects.filter(version__gt=0).exists()
    assert Recipient.objects.get(external_id="ada").timezone == "UTC"


@pytest.mark.django_db
def test_a_malformed_if_match_is_400(api):
    make_recipient("ada")

    response = api.patch(URL, {"enabled": False}, format="json", HTTP_IF_MATCH="yesterday")

    assert response.status_code == 400
    assert response.json()["error"]["field"] == "If-Match"


@pytest.mark.django_db
def test_preferences_of_an_unknown_user_are_404(api):
    assert api.get("/api/v1/users/nobody/preferences").status_code == 404
    assert api.patch("/api/v1/users/nobody/preferences", {}, format="json", HTTP_IF_MATCH='"0"').status_code == 404


@pytest.mark.django_db(transaction=True)
def test_of_two_concurrent_editors_one_wins_and_the_other_gets_412(api_key):
    # given two editors who both read version 0
    make_recipient("ada")
    barrier = threading.Barrier(2)
    statuses: dict[str, int] = {}

    def edit(name: str, body: dict) -> None:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key[1]}")
        try:
            barrier.wait()
            statuses[name] = client.patch(URL, body, format="json", HTTP_IF_MATCH='"0"').status_code
        finally:
            connection.close()

    # when both save at once
    editors = [
        threading.Thread(target=edit, args=("quiet", {"channels": {"sms": False}})),
        threading.Thread(target=edit, args=("off", {"enabled": False})),
    ]
    for editor in editors:
        editor.start()
    for editor in editors:
        editor.join(30)

    # then exactly one saved, and the stored row is the winner's edit alone
    assert sorted(statuses.values()) == [200, 412]
    winner = next(name for name, status in statuses.items() if status == 200)
    row = Preferences.objects.get(recipient__external_id="ada")
    assert row.version == 1
    assert (row.channels, row.enabled) == (({"sms": False}, True) if winner == "quiet" else ({}, False))


# --- one-click unsubscribe -----------------------------------------------------------------------

def local_path(header_value: str) -> str:
    url = header_value.strip("<>")
    assert url.startswith(settings.PUBLIC_BASE_URL + "/")
    return urlsplit(url).path


@pytest.mark.django_db
def test_marketing_and_social_emails_carry_one_click_headers_and_others_do_not():
    recipient = make_recipient("ada")

    marketing = list_unsubscribe_headers(recipient, "marketing")

    assert marketing["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert marketing["List-Unsubscribe"] == f"<{unsubscribe_url(recipient, 'marketing')}>"
    assert unsubscribe_url(recipient, "marketing").startswith(settings.PUBLIC_BASE_URL + "/")
    assert list_unsubscribe_headers(recipient, "social")["List-Unsubscribe"] == f"<{unsubscribe_url(recipient, 'social')}>"
    assert unsubscribe_url(recipient, "social") != unsubscribe_url(recipient, "marketing")
    assert list_unsubscribe_headers(recipient, "transaction") == {}
    assert list_unsubscribe_headers(recipient, "security") == {}


@pytest.mark.django_db
def test_a_one_click_post_to_the_header_url_turns_the_category_off(api, client):
    # given a person whose social notifications are on
    recipient = make_recipient("ada")
    path = local_path(list_unsubscribe_headers(recipient, "social")["List-Unsubscribe"])

    # when their mail provider posts the RFC 8058 body, without cookies or CSRF token
    response = client.post(path, "List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded")

    # then
    assert response.status_code == 200
    assert "unsubscribed" in response.content.decode()
    social = api.get(URL).json()["categories"]["social"]
    assert social["enabled"] is False
    assert social["unsubscribed_at"]
    assert [(d.action, d.reason) for d in decide(recipient, "social", ["push"], "medium", "k", timezone.now())] == [
        ("suppress", "unsubscribed")
    ]


@pytest.mark.django_db
def test_opening_the_link_asks_first_and_changes_nothing(client):
    recipient = make_recipient("ada")

    response = client.get(urlsplit(unsubscribe_url(recipient, "marketing")).path)

    page = response.content.decode()
    assert response.status_code == 200
    assert '<form method="post"' in page
    assert "a***@example.com" in page
    assert not Preferences.objects.exists()


@pytest.mark.django_db
def test_a_tampered_link_is_a_400_page_and_changes_nothing(client):
    recipient = make_recipient("ada")
    path = urlsplit(unsubscribe_url(recipient, "marketing")).path
    tampered = path[:-3] + ("AAA" if not path.endswith("AAA") else "BBB")

    response = client.post(tampered, "List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded")

    assert response.status_code == 400
    assert "not valid" in response.content.decode()
    assert not Preferences.objects.exists()


@pytest.mark.django_db
def test_unsubscribing_twice_is_harmless_and_bumps_the_version_once(client, api):
    recipient = make_recipient("ada")
    path = urlsplit(unsubscribe_url(recipient, "social")).path

    client.post(path)
    client.post(path)

    assert api.get(URL).json()["version"] == 1
    # an editor still holding version 0 learns about the change instead of undoing it
    assert patch(api, {"categories": {"social": {"enabled": True}}}, version="0").status_code == 412


@pytest.mark.django_db
def test_an_unsubscribe_survives_a_put_that_leaves_the_category_out_until_an_explicit_opt_in(client, api):
    recipient = make_recipient("ada")
    client.post(urlsplit(unsubscribe_url(recipient, "social")).path)

    kept = api.put(URL, {"enabled": True}, format="json", HTTP_IF_MATCH='"1"').json()
    opted_in = patch(api, {"categories": {"social": {"enabled": True}}}, version=kept["version"]).json()

    assert kept["categories"]["social"]["enabled"] is False
    assert kept["categories"]["social"]["unsubscribed_at"]
    assert opted_in["categories"]["social"]["enabled"] is True
    assert opted_in["categories"]["social"]["unsubscribed_at"] is None


# --- erasure and export --------------------------------------------------------------------------

def make_history(recipient: Recipient) -> Notification:
    notification = Notification.objects.create(
        recipient=recipient, type="transaction", priority="high", template_name="receipt",
        variables={"name": "Ada Lovelace", "card": "4242"}, metadata={"order": "A-17"}, status="sent",
    )
    delivery = Delivery.objects.create(
        notification=notification, channel="email", status="sent", provider="sandbox",
        content={"subject": "Your receipt, Ada", "body": "Card 4242"}, attempts=1, sent_at=timezone.now(),
    )
    DeliveryAttempt.objects.create(delivery=delivery, number=1, provider="sandbox", outcome="sent",
                                   error_message="mailbox ada@example.com full (earlier)")
    SandboxMessage.objects.create(delivery=delivery, channel="email", to=["ada@example.com"], content={"body": "Card 4242"})
    InboxItem.objects.create(recipient=recipient, title="Receipt", body="Card 4242")
    return notification


@pytest.mark.django_db
def test_export_returns_everything_held_about_the_person(api):
    recipient = make_recipient("ada")
    patch(api, {"channels": {"sms": False}})
    notification = make_history(recipient)

    response = api.get("/api/v1/users/ada/export")

    body = response.json()
    assert response.status_code == 200
    assert body["user"]["user_id"] == "ada"
    assert body["user"]["email"] == "ada@example.com"
    assert [d["token"] for d in body["devices"]] == ["token-ada"]
    assert body["preferences"]["channels"]["sms"] is False
    [exported] = body["notifications"]
    assert exported["id"] == str(notification.pk)
    assert exported["variables"] == {"name": "Ada Lovelace", "card": "4242"}
    [delivery] = exported["deliveries"]
    assert delivery["content"]["subject"] == "Your receipt, Ada"
    assert [a["outcome"] for a in delivery["attempt_log"]] == ["sent"]
    assert [item["body"] for item in body["inbox"]] == ["Card 4242"]


@pytest.mark.django_db
def test_erasure_removes_personal_data_and_keeps_anonymous_counts(api):
    # given a person with devices, preferences and history
    recipient = make_recipient("ada")
    patch(api, {"channels": {"sms": False}})
    notification = make_history(recipient)

    # when
    response = api.delete("/api/v1/users/ada")

    # then the caller's id no longer resolves
    assert response.status_code == 204
    assert api.get("/api/v1/users/ada").status_code == 404
    assert api.get("/api/v1/users/ada/export").status_code == 404
    assert api.delete("/api/v1/users/ada").status_code == 404
    # and nothing personal is left
    erased = Recipient.objects.get(pk=recipient.pk)
    assert erased.external_id.startswith("erased:") and "ada" not in erased.external_id
    assert (erased.email, erased.phone, erased.webhook_url, erased.is_active) == ("", "", "", False)
    assert not Device.objects.filter(recipient=erased).exists()
    assert not Preferences.objects.filter(recipient=erased).exists()
    assert not InboxItem.objects.filter(recipient=erased).exists()
    notification.refresh_from_db()
    assert (notification.variables, notification.metadata) == ({}, {})
    delivery = Delivery.objects.get(notification=notification)
    assert delivery.content == {}
    assert DeliveryAttempt.objects.get(delivery=delivery).error_message == ""
    sandbox = SandboxMessage.objects.get(delivery=delivery)
    assert (sandbox.to, sandbox.content) == ([], {})
    # but the counts survive
    assert (notification.status, notification.type, delivery.status, delivery.channel) == ("sent", "transaction", "sent", "email")
    assert delivery.sent_at is not None


@pytest.mark.django_db
def test_erasure_touches_no_one_else(api):
    make_recipient("ada")
    bob = make_recipient("bob")
    bob_notification = make_history(bob)

    api.delete("/api/v1/users/ada")

    bob_notification.refresh_from_db()
    assert bob_notification.variables == {"name": "Ada Lovelace", "card": "4242"}
    assert Recipient.objects.get(pk=bob.pk).email == "bob@example.com"
    assert Device.objects.filter(recipient=bob).exists()


@pytest.mark.django_db
def test_a_user_id_freed_by_erasure_can_be_registered_again(api):
    make_recipient("ada")
    api.delete("/api/v1/users/ada")

    response = api.put("/api/v1/users/ada", {"email": "new@example.com"}, format="json")

    assert response.status_code == 201
    assert api.get(URL).json()["version"] == 0

"""API keys in admin: revoked from the key's page or the list by whoever may change keys, with who did it on record."""

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission
from django.urls import reverse

from notifications.models import ApiKey

pytestmark = pytest.mark.django_db

PASSWORD = "a-long-ops-password"


def staff(django_user_model, client, username: str, *codenames: str):
    user = django_user_model.objects.create_user(username, password=PASSWORD, is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    client.login(username=username, password=PASSWORD)
    return user


def test_a_key_is_revoked_from_its_page_and_the_revocation_is_on_record(client, django_user_model):
    key, _ = ApiKey.issue("billing")
    keeper = staff(django_user_model, client, "keeper", "view_apikey", "change_apikey")
    page = client.get(reverse("admin:notifications_apikey_change", args=[key.pk])).content.decode()
    assert 'id="revoke-form"' in page

    response = client.post(reverse("admin:notifications_apikey_revoke", args=[key.pk]))

    key.refresh_from_db()
    assert response.status_code == 302 and key.is_revoked
    entry = LogEntry.objects.get()
    assert (entry.user, entry.object_id, entry.change_message) == (keeper, str(key.pk), "Revoked")
    assert 'id="revoke-form"' not in client.get(reverse("admin:notifications_apikey_change", args=[key.pk])).content.decode()


def test_who_may_only_view_keys_cannot_revoke_one(client, django_user_model):
    key, _ = ApiKey.issue("billing")
    staff(django_user_model, client, "viewer", "view_apikey")

    on_its_page = client.post(reverse("admin:notifications_apikey_revoke", args=[key.pk]))
    client.post(reverse("admin:notifications_apikey_changelist"), {"action": "revoke", "_selected_action": [key.pk]})

    key.refresh_from_db()
    assert on_its_page.status_code == 403 and not key.is_revoked
    assert 'id="revoke-form"' not in client.get(reverse("admin:notifications_apikey_change", args=[key.pk])).content.decode()

"""The template pages ops staff use: history, preview, diff, publish, send a test."""

import json
import time

import pytest

from notifications.models import Notification
from templates_app import versions
from templates_app.models import MessageTemplate, Template
from tests.factories import make_recipient

SCHEMA = {"type": "object", "properties": {"name": {"type": "string", "examples": ["Ada"]}, "total": {"type": "number", "examples": [12.5]}}}


def two_versions():
    versions.create_draft("welcome", variables_schema=SCHEMA, default_locale="en", category="transaction", contents=[
        {"channel": "email", "locale": "en", "subject": "Hi {{ name }}",
         "html_body": "<style>p{color:red}</style><p>{{ total|currency('EUR') }}</p>"},
        {"channel": "email", "locale": "de", "subject": "Hallo {{ name }}", "body": "Summe {{ total|currency('EUR') }}"},
        {"channel": "sms", "locale": "en", "body": "Hi {{ name }} \u2713 " + "x" * 170},
        {"channel": "push", "locale": "en", "title": "T" * 60, "body": "Hi"},
    ])
    versions.publish("welcome", 1)
    second = versions.create_draft("welcome", contents=[{"channel": "email", "locale": "en", "subject": "Welcome {{ name }}",
                                                         "body": "Hello"}])
    return MessageTemplate.objects.get(name="welcome"), second


@pytest.mark.django_db
def test_the_preview_renders_each_channel_and_locale_with_what_each_channel_needs_to_know(admin_client):
    template, _ = two_versions()
    first = template.versions.get(number=1)

    page = admin_client.get(f"/admin/templates_app/templateversion/{first.pk}/preview/", {"locale": "de-DE", "timezone": "Europe/Berlin"})

    html = page.content.decode()
    assert page.status_code == 200
    assert 'sandbox=""' in html and "color: red" in html  # HTML in a sandboxed frame, CSS inlined
    assert "Summe 12,50" in html  # the German reader's money
    assert "UCS-2, 3 segments" in html  # the check mark costs the SMS its GSM-7 encoding
    assert "title is 60 characters" in html
    bad = admin_client.get(f"/admin/templates_app/templateversion/{first.pk}/preview/", {"variables": json.dumps({"name": 5})})
    assert "variables.name" in bad.content.decode()


@pytest.mark.django_db
def test_the_diff_shows_what_changed_between_two_versions(admin_client):
    _, second = two_versions()

    page = admin_client.get(f"/admin/templates_app/templateversion/{second.pk}/diff/", {"against": 1})

    html = page.content.decode()
    assert page.status_code == 200
    assert "email/en subject" in html and "Welcome" in html and "sms/en body" in html


@pytest.mark.django_db
def test_publishing_from_admin_checks_the_version_and_makes_it_current(admin_client):
    template, second = two_versions()
    broken = versions.create_draft("welcome", contents=[{"channel": "email", "locale": "en", "subject": "{{ nickname }}", "body": "x"}])

    admin_client.post(f"/admin/templates_app/templateversion/{broken.pk}/publish/")
    assert MessageTemplate.objects.get(name="welcome").current_version == 1
    admin_client.post(f"/admin/templates_app/templateversion/{second.pk}/publish/")

    assert MessageTemplate.objects.get(name="welcome").current_version == 2
    assert Template.objects.get(name="welcome").subject == "Welcome {{ name }}"
    page = admin_client.get(f"/admin/templates_app/messagetemplate/{template.pk}/change/")
    assert "v2 (current)" in page.content.decode()


@pytest.mark.django_db
def test_send_a_test_accepts_a_notification_that_renders_that_version(admin_client):
    _, second = two_versions()
    make_recipient("tester")

    admin_client.post(f"/admin/templates_app/templateversion/{second.pk}/send-test/", {"user_id": "tester", "variables": ""})

    notification = Notification.objects.get(recipient__external_id="tester")
    assert notification.metadata == {"herald_template_version": 2}
    assert notification.requested_channels == ["email"]


CRASHING_HTML = "<style>div{color:red}</style>" + "<div>" * 10_000 + "x" + "</div>" * 10_000


@pytest.mark.django_db
def test_the_preview_of_a_version_whose_html_crashes_the_inliner_shows_the_error_and_the_other_contents(admin_client):
    version = versions.create_draft("welcome", contents=[{"channel": "sms", "locale": "en", "body": "Hi there"}])
    version.contents = [*version.contents, {"channel": "email", "locale": "en", "subject": "s", "body": "", "title": "",
                                            "html_body": CRASHING_HTML}]
    version.save()  # straight into the table, as a version saved before HTML was checked

    page = admin_client.get(f"/admin/templates_app/templateversion/{version.pk}/preview/")

    html = page.content.decode()
    assert page.status_code == 200
    assert "Hi there" in html and "SIGSEGV" in html


@pytest.mark.django_db
def test_the_diff_of_two_large_drafts_that_differ_everywhere_answers_quickly_and_reads_as_lines(admin_client):
    old_body = "\n".join(f"line {i} of the old text, long enough to be realistic" for i in range(500))
    new_body = "\n".join(f"line {i * 7 % 500} of the new text, long enough to be realistic" for i in range(500))
    versions.create_draft("big", contents=[{"channel": "email", "locale": "en", "subject": "s", "body": old_body}])
    second = versions.create_draft("big", contents=[{"channel": "email", "locale": "en", "subject": "s", "body": new_body}])

    started = time.monotonic()
    page = admin_client.get(f"/admin/templates_app/templateversion/{second.pk}/diff/", {"against": 1})

    html = page.content.decode()
    assert page.status_code == 200
    assert time.monotonic() - started < 5
    assert "email/en body" in html and 'class="added"' in html and 'class="removed"' in html
    assert "diff_next" not in html  # no difflib navigation links


@pytest.mark.django_db
def test_staff_without_view_permission_cannot_see_a_versions_preview_or_diff(client, django_user_model):
    _, second = two_versions()
    django_user_model.objects.create_user("staff", password="pw-staff-1", is_staff=True)
    client.login(username="staff", password="pw-staff-1")

    for page in ("preview", "diff"):
        response = client.get(f"/admin/templates_app/templateversion/{second.pk}/{page}/")
        assert response.status_code == 403, page

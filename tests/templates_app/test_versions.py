"""Template versions over the REST API: drafts, publishing, rollback, and what each send renders."""

import time

import pytest

from delivery.chunks import attempt_chunk, claim_chunk
from delivery.models import Delivery
from notifications import routing
from notifications.models import Notification
from templates_app.models import Template
from tests.factories import make_recipient

SCHEMA = {"type": "object", "required": ["name"], "properties": {"name": {"type": "string", "examples": ["Ada"]}}}


def content(channel="email", locale="en", **fields):
    defaults = {"subject": "Hi {{ name }}", "body": "Hello {{ name }}"} if channel == "email" else {"body": "Hello {{ name }}"}
    return {"channel": channel, "locale": locale, **defaults, **fields}


def draft(api, name="welcome", **body):
    body.setdefault("contents", [content()])
    body.setdefault("variables_schema", SCHEMA)
    return api.post(f"/api/v1/templates/{name}/versions", body, format="json")


def publish(api, number, name="welcome"):
    return api.post(f"/api/v1/templates/{name}/versions/{number}/publish")


@pytest.mark.django_db
def test_a_draft_is_edited_published_and_then_immutable(api):
    created = draft(api, note="first words", description="Sent on sign-up", category="transaction")
    assert created.status_code == 201, created.content
    assert (created.json()["number"], created.json()["status"], created.json()["current"]) == (1, "draft", False)

    edited = api.patch("/api/v1/templates/welcome/versions/1", {"contents": [content(subject="Welcome, {{ name }}")]},
                       format="json")
    assert edited.status_code == 200 and edited.json()["contents"][0]["subject"] == "Welcome, {{ name }}"
    assert not Template.objects.filter(name="welcome").exists()  # a draft changes nothing that is sent

    published = publish(api, 1)
    assert published.status_code == 200
    assert (published.json()["status"], published.json()["current"]) == ("published", True)
    assert Template.objects.get(name="welcome", channel="email").subject == "Welcome, {{ name }}"

    refused = api.patch("/api/v1/templates/welcome/versions/1", {"note": "later"}, format="json")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "version_published"


@pytest.mark.django_db
def test_rollback_publishes_an_older_version_and_the_list_shows_which_is_current(api):
    draft(api)
    publish(api, 1)
    second = draft(api, contents=[content(subject="v2 {{ name }}"), content("sms", body="v2 {{ name }}")])
    publish(api, second.json()["number"])
    assert set(Template.objects.filter(name="welcome").values_list("channel", flat=True)) == {"email", "sms"}

    assert publish(api, 1).status_code == 200

    listed = api.get("/api/v1/templates/welcome/versions").json()["results"]
    assert [(v["number"], v["current"]) for v in listed] == [(2, False), (1, True)]
    assert list(Template.objects.filter(name="welcome").values_list("channel", "subject")) == [("email", "Hi {{ name }}")]


@pytest.mark.django_db
def test_a_new_draft_copies_the_current_version_or_the_one_named(api):
    draft(api)
    publish(api, 1)
    draft(api, contents=[content(subject="Second")])

    copy_of_current = api.post("/api/v1/templates/welcome/versions", {}, format="json").json()
    copy_of_two = api.post("/api/v1/templates/welcome/versions", {"copy_from": 2}, format="json").json()

    assert copy_of_current["contents"][0]["subject"] == "Hi {{ name }}"
    assert copy_of_two["contents"][0]["subject"] == "Second"
    assert api.post("/api/v1/templates/welcome/versions", {"copy_from": 9}, format="json").status_code == 404


@pytest.mark.django_db
@pytest.mark.parametrize(("contents", "field", "names"), [
    ([content(body="Hi {{ name")], "contents.0.body", "email/en"),
    ([content(), content("sms", "pt-BR", body="{% if %}")], "contents.1.body", "sms/pt-BR"),
    ([content(subject="")], "contents.0.subject", "email/en"),
    ([content(), content()], "contents.1.locale", "email"),
    ([], "contents", ""),
])
def test_contents_that_cannot_be_saved_are_400_naming_channel_locale_and_field(api, contents, field, names):
    response = draft(api, contents=contents)

    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["field"] == field
    assert names in error["message"]


@pytest.mark.django_db
def test_publishing_a_version_that_cannot_render_the_schemas_sample_is_400_naming_it(api):
    draft(api, contents=[content(), content("sms", "de", body="Hallo {{ nickname }}")])

    response = publish(api, 1)

    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["field"]) == ("invalid_template", "contents.1.body")
    assert "sms/de" in error["message"] and "nickname" in error["message"]
    assert not Template.objects.filter(name="welcome").exists()


@pytest.mark.django_db
def test_the_one_variant_api_adds_a_published_version_each_time(api):
    body = {"name": "receipt", "channel": "email", "subject": "Order {{ id }}", "body": "Thanks for {{ id }}",
            "variables_schema": {"type": "object", "required": ["id"]}}
    api.post("/api/v1/templates", body, format="json")
    api.post("/api/v1/templates", {**body, "channel": "sms", "subject": ""}, format="json")

    versions = api.get("/api/v1/templates/receipt/versions").json()["results"]
    assert [(v["number"], v["status"], v["current"]) for v in versions] == [(2, "published", True), (1, "published", False)]
    assert sorted(c["channel"] for c in versions[0]["contents"]) == ["email", "sms"]


@pytest.mark.django_db(transaction=True)
def test_a_send_routed_before_a_rollback_keeps_its_version_and_new_sends_render_the_rolled_back_one(api, no_worker):
    # given version 2 is current and a notification has been routed (not yet sent)
    person = make_recipient("v1", locale="pt-BR")
    draft(api, contents=[content(subject="One {{ name }}"), content(locale="pt", subject="Um {{ name }}")])
    publish(api, 1)
    draft(api, contents=[content(subject="Two {{ name }}"), content(locale="pt", subject="Dois {{ name }}")])
    publish(api, 2)
    early = notify(person, 1)
    routing.route(early.pk)

    # when version 1 is published again (a rollback) and another notification is routed
    publish(api, 1)
    late = notify(person, 2)
    routing.route(late.pk)
    send_due_email()

    # then each renders the version it was routed with, in the person's language (pt-BR → pt)
    early_delivery, late_delivery = (Delivery.objects.get(notification=n) for n in (early, late))
    assert (early_delivery.template_version, early_delivery.content["subject"]) == (2, "Dois Ada")
    assert (late_delivery.template_version, late_delivery.content["subject"]) == (1, "Um Ada")
    assert (late_delivery.template_locale, late_delivery.locale_fallback) == ("pt", "language")
    detail = api.get(f"/api/v1/notifications/{early.pk}").json()["deliveries"][0]
    assert (detail["template_version"], detail["template_locale"], detail["locale_fallback"]) == (2, "pt", "language")


def notify(person, n: int) -> Notification:
    return Notification.objects.create(recipient=person, type="transaction", priority="high", template_name="welcome",
                                       variables={"name": "Ada", "n": n}, status="queued", requested_channels=["email"])


def send_due_email():
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as pool:
        while True:
            ids, claimed_at = claim_chunk("email", ["critical", "high"], 10)
            if not ids:
                return
            attempt_chunk(ids, claimed_at, time.monotonic(), pool)


ESCAPES = [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{ lipsum.__globals__['os'].popen('id').read() }}",
    "{{ self._TemplateReference__context }}",
    "{{ name.__class__.__base__.__subclasses__() }}",
    "{{ (name|attr('__class__')).__mro__ }}",
    "{% for c in ().__class__.__base__.__subclasses__() %}{{ c }}{% endfor %}",
    "{{ config }}{{ request }}{{ settings.SECRET_KEY }}",
    "{{ name|datetime('EEEE' * 1000000) }}",
    "{{ 12|currency('EUR' * 100000) }}",
]


@pytest.mark.django_db
@pytest.mark.parametrize("payload", ESCAPES)
@pytest.mark.parametrize("field", ["subject", "body", "html_body"])
def test_known_sandbox_escapes_in_a_version_are_refused_or_render_nothing_dangerous(api, payload, field):
    saved = draft(api, contents=[content(**{field: payload})])
    if saved.status_code == 400:
        return  # refused as it was saved
    published = publish(api, saved.json()["number"])
    if published.status_code == 200:  # it rendered the sample: then only harmlessly
        rendered = Template.objects.get(name="welcome")
        from templates_app.rendering import render
        output = " ".join(render(rendered, {"name": "Ada"}).values())
        assert not any(leak in output for leak in ("subclasses", "__globals__", "uid=", "SECRET", "<class"))
    else:
        assert published.status_code == 400 and published.json()["error"]["field"].startswith("contents.0.")


DATED = {"type": "object", "required": ["at"], "properties": {"at": {"type": "string", "format": "date-time"},
                                                                "site": {"type": "string", "format": "uri"}}}


@pytest.mark.django_db
def test_a_version_whose_variables_have_formats_is_checked_with_samples_of_those_formats(api):
    # the README's own example: a date-time variable shown with the datetime filter
    created = draft(api, name="dated", variables_schema=DATED,
                    contents=[content(subject="At {{ at|datetime('medium') }}", body="See {{ site }}")])
    assert created.status_code == 201, created.content

    response = publish(api, 1, name="dated")

    assert response.status_code == 200, response.content


@pytest.mark.django_db
@pytest.mark.parametrize("variables, field", [
    ({"at": "not-a-date"}, "variables.at"),
    ({"at": "2030-02-30T09:00:00Z"}, "variables.at"),
    ({"at": "2030-01-15T09:00:00Z", "site": "not a uri"}, "variables.site"),
])
def test_a_variable_that_violates_its_declared_format_is_a_400_at_accept_naming_it(api, variables, field):
    make_recipient("u1")
    draft(api, name="dated", variables_schema=DATED, contents=[content(subject="At {{ at|datetime('medium') }}", body="See you")])
    assert publish(api, 1, name="dated").status_code == 200

    response = api.post("/api/v1/notifications", {"user_id": "u1", "type": "transaction", "template": "dated",
                                                   "variables": variables}, format="json")

    assert response.status_code == 400, response.content
    assert response.json()["error"]["field"] == field, response.content

"""Pure logic: routing rules, backoff, overall status, template rendering and selection."""

import pytest
from django.test import override_settings

from delivery.outcomes import retry_delay
from notifications.lifecycle import overall_status
from notifications.policy import choose_channels, unreachable_reason
from templates_app.models import Template
from templates_app.rendering import RenderError, render, select_variant, template_problem
from templates_app.variables import schema_error, variable_errors

ALL_REACHABLE = dict.fromkeys(["email", "sms", "push", "in_app", "webhook"])
ALL_TEMPLATES = {"email", "sms", "push", "in_app", "webhook"}


def test_reachable_channels_with_templates_are_chosen_in_order():
    chosen, skipped = choose_channels(["sms", "email"], ALL_TEMPLATES, ALL_REACHABLE)
    assert (chosen, skipped) == (["sms", "email"], [])


def test_unreachable_channels_and_missing_templates_are_skipped_with_reasons():
    unreachable = {**ALL_REACHABLE, "push": "no_device"}
    chosen, skipped = choose_channels(["push", "sms", "email"], {"push", "email"}, unreachable)
    assert chosen == ["email"]
    assert skipped == [{"channel": "push", "reason": "no_device"}, {"channel": "sms", "reason": "no_template"}]


def test_reachability_needs_the_matching_contact():
    contact = {"email": "", "phone": "", "webhook_url": "", "active_devices": 0}
    assert unreachable_reason("email", **contact) == "no_email"
    assert unreachable_reason("sms", **contact) == "no_phone"
    assert unreachable_reason("push", **contact) == "no_device"
    assert unreachable_reason("webhook", **contact) == "no_webhook_url"
    assert unreachable_reason("in_app", **contact) is None
    assert unreachable_reason("push", **{**contact, "active_devices": 1}) is None


@override_settings(HERALD_RETRY_BASE_SECONDS=4, HERALD_RETRY_MAX_SECONDS=60)
def test_retry_delay_grows_exponentially_with_bounded_jitter_and_a_cap():
    for attempt, ceiling in [(1, 4), (2, 8), (3, 16), (4, 32), (5, 60), (9, 60)]:
        delays = [retry_delay(attempt) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 1  # jittered


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        (["sent", "failed"], "sent"),
        (["queued", "sending"], "sending"),
        (["delivered", "sent"], "delivered"),
        (["read", "failed"], "read"),
        (["failed", "bounced"], "failed"),
        (["failed", "queued"], "sending"),
        ([], None),
    ],
)
def test_overall_status_is_the_furthest_delivery_or_failed_when_all_failed(statuses, expected):
    assert overall_status(statuses) == expected


def template(**fields) -> Template:
    return Template(name="t", channel="email", locale="en", **{"subject": "", "title": "", "body": "", "html_body": "", **fields})


def test_render_fills_variables_and_escapes_html_only_in_html():
    rendered = render(template(subject="Hi {{ name }}", body="{{ name }}", html_body="<p>{{ name }}</p>"), {"name": "<b>A&B</b>"})
    assert rendered == {"subject": "Hi <b>A&B</b>", "body": "<b>A&B</b>", "html_body": "<p>&lt;b&gt;A&amp;B&lt;/b&gt;</p>"}


def test_render_refuses_a_missing_variable_instead_of_printing_nothing():
    with pytest.raises(RenderError, match="name"):
        render(template(body="Hi {{ name }}"), {})


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ cycler.__init__.__globals__ }}",
        "{% set x = [] %}{{ x.append(1) }}",
    ],
)
def test_the_sandbox_blocks_escapes_and_mutation(source):
    with pytest.raises(RenderError):
        render(template(body=source), {})


def test_syntax_errors_are_reported_with_the_line():
    assert template_problem({"body": "Hi {{ name }"})[0] == "body"
    assert "line 2" in template_problem({"subject": "ok", "body": "ok\n{% if %}"})[1]
    assert template_problem({"body": "Hi {{ name }}", "html_body": "<p>{{ name }}</p>"}) is None


def test_variant_selection_prefers_exact_locale_then_language_then_default():
    variants = [
        {"channel": "email", "locale": "en"},
        {"channel": "email", "locale": "pt"},
        {"channel": "email", "locale": "pt-BR"},
        {"channel": "sms", "locale": "de"},
    ]
    assert select_variant(variants, "email", "pt-BR")["locale"] == "pt-BR"
    assert select_variant(variants, "email", "pt-PT")["locale"] == "pt"
    assert select_variant(variants, "email", "fr")["locale"] == "en"
    assert select_variant(variants, "sms", "fr")["locale"] == "de"
    assert select_variant(variants, "push", "en") is None


def test_variable_errors_name_the_missing_or_wrong_variable():
    schema = {
        "type": "object",
        "required": ["order"],
        "properties": {"order": {"type": "object", "required": ["id"], "properties": {"id": {"type": "integer"}}}},
    }
    assert variable_errors(schema, {})[0][0] == "variables.order"
    assert variable_errors(schema, {"order": {}})[0][0] == "variables.order.id"
    assert variable_errors(schema, {"order": {"id": "x"}})[0][0] == "variables.order.id"
    assert variable_errors(schema, {"order": {"id": 1}}) == []
    assert variable_errors({}, {"anything": 1}) == []


def test_invalid_json_schemas_are_reported():
    assert schema_error({"type": "nonsense"}) is not None
    assert schema_error({"type": "object"}) is None

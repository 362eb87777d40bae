"""Rendering in the sandbox, and choosing a template's variant by locale."""

import pytest

from templates_app.models import Template
from templates_app.rendering import RenderError, render, select_variant, template_problem


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
    def chosen(channel, locale, default="en"):
        variant, how = select_variant(variants, channel, locale, default)
        return (variant["locale"] if variant else None), how

    assert chosen("email", "pt-BR") == ("pt-BR", "exact")
    assert chosen("email", "pt-PT") == ("pt", "language")
    assert chosen("email", "fr") == ("en", "default")
    assert chosen("email", "fr", default="pt") == ("pt", "default")
    assert chosen("sms", "fr") == ("de", "any")
    assert chosen("push", "en") == (None, "")


def test_dates_numbers_and_money_are_formatted_for_the_readers_locale_and_timezone():
    source = template(body="{{ at|datetime('medium') }} | {{ at|date('long') }} | {{ total|currency('EUR') }} | {{ n|number }}")
    variables = {"at": "2026-03-29T00:30:00Z", "total": 1234.5, "n": 1234567}

    berlin = render(source, variables, "de-DE", "Europe/Berlin")["body"]
    new_york = render(source, variables, "en-US", "America/New_York")["body"]

    assert berlin == "29.03.2026, 01:30:00 | 29. März 2026 | 1.234,50\xa0€ | 1.234.567"
    assert new_york.startswith("Mar 28, 2026, 8:30:00") and "March 28, 2026" in new_york and "€1,234.50" in new_york
    assert render(template(body="{{ d|date('short') }}"), {"d": "2026-12-31"}, "en-GB", "Pacific/Kiritimati")["body"] == "31/12/2026"


def test_a_bad_value_for_a_format_filter_is_a_render_error_naming_the_field():
    with pytest.raises(RenderError) as failure:
        render(template(subject="{{ when|datetime }}"), {"when": "next tuesday"})
    assert failure.value.field == "subject"


def test_email_html_gets_its_css_inlined_and_a_text_part_when_none_was_written():
    source = template(body="", html_body="<style>.cta { color: #c00 }</style><p>Hi {{ name }}, <a class='cta' href='https://x.example/go'>go</a></p>")

    rendered = render(source, {"name": "Ada"})

    assert '<a class="cta" href="https://x.example/go" style="color: #c00;">go</a>' in rendered["html_body"]
    assert "<style" not in rendered["html_body"]
    assert rendered["body"] == "Hi Ada, [go](https://x.example/go)"

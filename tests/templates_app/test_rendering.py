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
    assert select_variant(variants, "email", "pt-BR")["locale"] == "pt-BR"
    assert select_variant(variants, "email", "pt-PT")["locale"] == "pt"
    assert select_variant(variants, "email", "fr")["locale"] == "en"
    assert select_variant(variants, "sms", "fr")["locale"] == "de"
    assert select_variant(variants, "push", "en") is None

"""Template rendering in a sandboxed Jinja2 environment.

Templates are written by ops staff and filled with caller-supplied variables, so both sides
are untrusted: the sandbox blocks attribute tricks, StrictUndefined turns a missing variable
into an error instead of an empty string, and HTML bodies are autoescaped.
"""

from functools import lru_cache

from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from templates_app.models import Template

TEXT_FIELDS = ("subject", "title", "body")
HTML_FIELDS = ("html_body",)
SINGLE_LINE_FIELDS = ("subject", "title")

_text_env = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
_html_env = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=True)


class RenderError(Exception):
    pass


@lru_cache(maxsize=2048)
def _compile(source: str, html: bool):
    return (_html_env if html else _text_env).from_string(source)


def syntax_error(source: str, html: bool = False) -> str | None:
    """Return a readable syntax error for `source`, or None if it compiles."""
    try:
        _compile(source, html)
    except TemplateError as exc:
        line = getattr(exc, "lineno", None)
        return f"{exc.message} (line {line})" if line else str(exc.message)
    return None


def render(template: Template, variables: dict) -> dict[str, str]:
    """Render every non-empty part of `template` with `variables`."""
    rendered = {}
    for field in TEXT_FIELDS + HTML_FIELDS:
        source = getattr(template, field)
        if not source:
            continue
        try:
            text = _compile(source, field in HTML_FIELDS).render(variables)
        except TemplateError as exc:
            raise RenderError(f"{template} {field}: {exc}") from exc
        # A line break in a subject would be a header injection (and SMTP refuses it outright).
        rendered[field] = " ".join(text.split()) if field in SINGLE_LINE_FIELDS else text
    return rendered


def select_variant(variants: list, channel: str, locale: str, default_locale: str = "en"):
    """Pick the variant for `channel` closest to `locale`: exact, then language, then default."""
    candidates = [v for v in variants if _get(v, "channel") == channel]
    if not candidates:
        return None
    by_locale = {_get(v, "locale").lower(): v for v in candidates}
    language = locale.split("-")[0].lower()
    for wanted in (locale.lower(), language, default_locale):
        if wanted in by_locale:
            return by_locale[wanted]
    return candidates[0]


def _get(variant, key: str):
    return variant[key] if isinstance(variant, dict) else getattr(variant, key)

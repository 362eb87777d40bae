"""The Jinja2 side of rendering, run only inside the render process (`render_process.py`).

Templates are written by ops staff and filled with caller-supplied variables, so both sides
are untrusted: the sandbox blocks attribute tricks, StrictUndefined turns a missing variable
into an error instead of an empty string, and HTML bodies are autoescaped. The sandbox cannot
bound time or memory (`{{ 3**100000000 }}`, `{{ 'a' * 10**9 }}`, nested loops), which is why
this module never runs in the web server or a worker: the process around it does.

Imports nothing from Django, so the render process starts in a fraction of a second.
"""

from functools import lru_cache

from jinja2 import ChainableUndefined, StrictUndefined, TemplateSyntaxError
from jinja2.sandbox import ImmutableSandboxedEnvironment

HTML_FIELDS = ("html_body",)
SINGLE_LINE_FIELDS = ("subject", "title")


class OutputTooLarge(Exception):
    pass


def _environment(undefined, html: bool) -> ImmutableSandboxedEnvironment:
    # optimized=False: Jinja2's optimizer folds constant expressions while compiling, so a
    # template like `{{ 3**100000000 }}` would cost its whole price at compile time.
    return ImmutableSandboxedEnvironment(undefined=undefined, autoescape=html, optimized=False)


_ENVIRONMENTS = {
    (strict, html): _environment(StrictUndefined if strict else ChainableUndefined, html)
    for strict in (True, False)
    for html in (True, False)
}


@lru_cache(maxsize=512)
def compile_template(source: str, html: bool, strict: bool = True):
    return _ENVIRONMENTS[(strict, html)].from_string(source)


def syntax_error(source: str, html: bool) -> str | None:
    """A readable syntax error for `source`, or None if it compiles."""
    try:
        compile_template(source, html)
    except TemplateSyntaxError as exc:
        return f"{exc.message} (line {exc.lineno})" if exc.lineno else str(exc.message)
    return None


def render_part(field: str, source: str, variables: dict, max_chars: int, strict: bool = True) -> str:
    """Render one part, stopping as soon as its output passes `max_chars`."""
    template = compile_template(source, field in HTML_FIELDS, strict)
    chunks, size = [], 0
    for chunk in template.generate(variables):
        size += len(chunk)
        if size > max_chars:
            raise OutputTooLarge(f"output passed the limit of {max_chars} characters")
        chunks.append(chunk)
    text = "".join(chunks)
    # A line break in a subject would be a header injection (and SMTP refuses it outright).
    return " ".join(text.split()) if field in SINGLE_LINE_FIELDS else text

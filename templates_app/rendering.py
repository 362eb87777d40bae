"""Template rendering, bounded in time, memory and output size whatever the template says.

Jinja2's sandbox stops a template from reaching outside, but not from spending, and the CSS
inliner crashes on some markup: so templates are compiled, rendered, checked, diffed and their
samples built only in bounded processes (core/bounded.py, the jobs in content_jobs.py). What
breaks a bound or kills its process fails that one render (`RenderError`), never the worker
or the web server that asked.
"""

import time

from core import bounded, metrics
from templates_app.jinja_sandbox import HTML_FIELDS
from templates_app.models import Template

TEXT_FIELDS = ("subject", "title", "body")
CONTENT_FIELDS = TEXT_FIELDS + HTML_FIELDS
JOBS = "templates_app.content_jobs"


class RenderError(Exception):
    """The template cannot be rendered with these variables; `bound` names a limit it broke
    (time, memory, output, size, recursion, budget, crash), `field` the part at fault."""

    def __init__(self, message: str, field: str = "", bound: str = ""):
        super().__init__(message)
        self.field = field
        self.bound = bound

    @property
    def ours(self) -> bool:
        """Herald's failure (no render process could start), to retry; every other one is the template's."""
        return self.bound == "start"


def run(job: str, payload, *, field: str = ""):
    """A content job's result; RenderError if it fails or breaks a bound (see core/bounded.py)."""
    try:
        return bounded.run(f"{JOBS}:{job}", payload, field=field)
    except bounded.Busy:
        raise
    except bounded.BoundBroken as exc:
        raise RenderError(str(exc), exc.field, exc.bound) from None


def render(template: Template | dict, variables: dict, locale: str = "en", timezone: str = "UTC") -> dict[str, str]:
    """Render every non-empty part of `template` (a row or a version's content) with `variables`,
    formatting dates, numbers and money for a reader in `locale` and `timezone`; RenderError
    names what failed. An email's HTML gets its CSS inlined and, when no text part was written,
    a text part made from it."""
    parts = _parts({field: variant_field(template, field) or "" for field in CONTENT_FIELDS})
    if not parts:
        return {}
    started = time.monotonic()
    try:
        rendered = run("render", {"parts": parts, "variables": variables, "locale": locale, "timezone": timezone})
        metrics.rendered(time.monotonic() - started)
        return rendered
    except RenderError as exc:
        metrics.rendered(time.monotonic() - started, exc.bound)
        where = f"{variant_field(template, 'channel')}/{variant_field(template, 'locale')}"
        raise RenderError(f"{where} {exc.field}: {exc}" if exc.field else f"{where}: {exc}", exc.field, exc.bound) from None


def render_each(contents: list[dict], variables: dict, locale: str = "en", timezone: str = "UTC") -> list[dict]:
    """Each of a version's contents rendered with `variables`, in one bounded request: for each,
    {"ok": rendered} or {"error", "field", "bound"}; contents after one that broke the time or
    memory limit are missing from the list."""
    payload = {"variables": variables, "locale": locale, "timezone": timezone}
    try:
        return run("render_each", {**payload, "contents": [{f: c.get(f) or "" for f in CONTENT_FIELDS} for c in contents]},
                   field="contents")
    except RenderError as exc:
        if exc.bound != "crash" or len(contents) < 2:
            raise
    # A content crashed the process (native code: the CSS inliner): find which, one at a time.
    results = []
    for index, content in enumerate(contents):
        try:
            results.append({"ok": render(content, variables, locale, timezone)})
        except RenderError as exc:
            results.append({"error": str(exc), "field": f"contents.{index}" + (f".{exc.field}" if exc.field else ""),
                            "bound": exc.bound})
            if exc.bound in ("time", "budget"):
                break
    return results


def template_problem(fields: dict[str, str]) -> tuple[str, str] | None:
    """(field, message) if a part does not compile or breaks a render limit on its own; else None."""
    problems = content_problems([fields])
    return (problems[0][1], problems[0][2]) if problems else None


def content_problems(contents: list[dict]) -> list[tuple[int, str, str]]:
    """(index, field, message) for each part of `contents` that does not compile, or that breaks a
    bound when rendered with every variable undefined (what a template costs whatever its variables
    is refused when it is saved, not when it is first sent). One bounded request for them all."""
    if not any(_parts({f: c.get(f) or "" for f in CONTENT_FIELDS}) for c in contents):
        return []
    checked = [{f: c.get(f) or "" for f in CONTENT_FIELDS} for c in contents]
    try:
        found = run("check", {"contents": checked})
    except RenderError as exc:
        if exc.bound == "crash" and len(contents) > 1:  # native code crashed on one of them: find which
            return [(index, field, message) for index, content in enumerate(checked)
                    for _, field, message in content_problems([content])]
        index, _, field = (exc.field.removeprefix("contents.").partition(".") if exc.field.startswith("contents.")
                           else ("0", "", exc.field))
        field = field or ("html_body" if exc.bound == "crash" and checked[0]["html_body"] else "body")
        return [(int(index) if index.isdigit() else 0, field, f"Template refused: {exc}")]
    return [(index, field, message) for index, field, message, _ in found]


def sample_variables(schema: dict):
    """A value `schema` accepts (its `examples`, `default`, `const`, `enum`, else built from its types and
    formats), for previewing and checking a version; built in a bounded process: the schema is an author's."""
    return run("sample", {"schema": schema}, field="variables_schema")


def diff(pairs: list[tuple[str, str, str]], seconds: float = 0.3) -> list[dict]:
    """For each (where, old text, new text) that differs, its lines as [kind, old number, new number, text]."""
    return run("diff", {"pairs": [list(pair) for pair in pairs], "seconds": seconds})


def _parts(fields: dict[str, str]) -> list[list[str]]:
    return [[field, source] for field, source in fields.items() if source]


def select_variant(variants: list, channel: str, locale: str, default_locale: str = "en") -> tuple[object | None, str]:
    """The variant for `channel` closest to `locale`, and how it was found: the exact locale,
    its language (`pt-BR` → `pt`), the template's default locale, or any (the only ones there are)."""
    candidates = [v for v in variants if variant_field(v, "channel") == channel]
    if not candidates:
        return None, ""
    by_locale = {(variant_field(v, "locale") or "").lower(): v for v in candidates}
    language = locale.split("-")[0].lower()
    for wanted, how in ((locale.lower(), "exact"), (language, "language"), (default_locale.lower(), "default")):
        if wanted in by_locale:
            return by_locale[wanted], how
    return sorted(candidates, key=lambda v: variant_field(v, "locale") or "")[0], "any"


def variant_field(variant, key: str):
    """A field of a variant: a `Template` row or a version's content (a dict)."""
    return variant.get(key) if isinstance(variant, dict) else getattr(variant, key)

"""Everything done to a template's text, run only inside a bounded process (core/bounded_child.py).

Rendering with Jinja2 and Babel, inlining an email's CSS, making a text part from its HTML,
checking a version's contents, diffing two versions and building sample variables from a
schema: each takes input whose size and shape an author or a caller picks, so none of it runs
in the web server or a worker (core/bounded.py). Imports nothing from Django.
"""

import json
import re

import css_inline
import html2text
from diff_match_patch import diff_match_patch

from core.bounded_child import JobFailed, TimeLimitReached, limits
from templates_app import jinja_sandbox
from templates_app.jinja_sandbox import HTML_FIELDS, OutputTooLarge

TEXT_FIELDS = ("subject", "title", "body")
# After these, a job stops: the time limit's alarm has gone off, or memory is short.
FATAL_BOUNDS = ("time", "memory")
CONTENT_FIELDS = TEXT_FIELDS + HTML_FIELDS


def render(payload: dict) -> dict[str, str]:
    """{"parts": [[field, source]…], "variables", "locale", "timezone"} → each part rendered; an
    email's HTML with its CSS inlined and, when no text part was written, a text part made from it."""
    jinja_sandbox.for_reader(payload.get("locale") or "en", payload.get("timezone") or "UTC")
    rendered = {}
    for field, source in payload["parts"]:
        with blamed_on(field):
            rendered[field] = jinja_sandbox.render_part(field, source, payload["variables"], limits["max_chars"])
    if rendered.get("html_body"):
        with blamed_on("html_body"):
            rendered["html_body"] = inline_css(rendered["html_body"])
            if not rendered.get("body", "").strip():
                rendered["body"] = text_of(rendered["html_body"])
    return rendered


def render_each(payload: dict) -> list[dict]:
    """{"contents": [{field: source…}…], "variables", "locale", "timezone"} → for each content,
    {"ok": rendered} or {"error", "field", "bound"}: a preview, or the check before publishing."""
    results = []
    for index, content in enumerate(payload["contents"]):
        parts = [[field, source] for field, source in content.items() if field in CONTENT_FIELDS and source]
        try:
            with blamed_on("", index):
                results.append({"ok": render({**payload, "parts": parts})})
        except JobFailed as exc:
            results.append({"error": str(exc)[:1000], "field": exc.field, "bound": exc.bound})
            if exc.bound in FATAL_BOUNDS:  # the alarm has gone off: nothing after this one is bounded
                break
    return results


def check(payload: dict) -> list[list]:
    """{"contents": [{field: source…}…]} → [index, field, message, bound] for each part that does not
    compile, or that breaks a bound when rendered with every variable undefined (what a template
    costs regardless of its variables — `{{ 'a' * 10**9 }}` — is refused when it is saved)."""
    problems = []
    for index, content in enumerate(payload["contents"]):
        for field in CONTENT_FIELDS:
            source = content.get(field) or ""
            if not source:
                continue
            problem = jinja_sandbox.syntax_error(source, field in HTML_FIELDS)
            if problem:
                problems.append([index, field, f"Template syntax error: {problem}", ""])
                continue
            try:
                with blamed_on(field, index):
                    probe(field, source)
            except JobFailed as exc:
                problems.append([index, field, f"Template refused: rendering {exc}", exc.bound])
                if exc.bound in FATAL_BOUNDS:
                    return problems
    return problems


def probe(field: str, source: str) -> None:
    """Render with every variable undefined, and an email's HTML through the inliner and the text
    converter; errors other than a broken bound are the variables' business."""
    try:
        output = jinja_sandbox.render_part(field, source, {}, limits["max_chars"], strict=False)
    except (MemoryError, RecursionError, OverflowError, OutputTooLarge, TimeLimitReached):
        raise
    except Exception:
        return
    if field in HTML_FIELDS:  # what the inliner and the text converter will make of it (the inliner can crash)
        text_of(inline_css(output))


class blamed_on:
    """Turn a broken bound inside into a JobFailed naming `field` (of content `index`), so a request
    with many parts says which one broke it. Time and memory stay fatal for the whole job."""

    def __init__(self, field: str, index: int | None = None):
        self.field, self.index = field, index

    def where(self, field: str) -> str:
        return field if self.index is None else f"contents.{self.index}" + (f".{field}" if field else "")

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, traceback):
        if exc is None:
            return False
        if isinstance(exc, JobFailed):
            if self.index is not None and not exc.field.startswith("contents."):
                exc.field = self.where(exc.field or self.field)
            elif not exc.field:
                exc.field = self.field
            return False
        bound = {TimeLimitReached: "time", MemoryError: "memory", RecursionError: "recursion",
                 OverflowError: "size"}.get(type(exc))
        if isinstance(exc, OutputTooLarge):
            bound = "output"
        if bound is None:
            if self.index is None and isinstance(exc, Exception):
                raise JobFailed(f"{type(exc).__name__}: {exc}"[:1000], self.field) from exc
            return False
        message = {"time": f"took longer than the limit of {limits['seconds']:g} s", "memory": "needed more memory than the limit allows",
                   "recursion": "recursed too deeply", "size": f"went past a size limit: {exc}",
                   "output": f"rendered {exc}"}[bound]
        raise JobFailed(message, self.where(self.field), bound) from None


# Many mail clients (Gmail's apps, Outlook) drop <style> blocks: styles must sit on each tag.
# Remote stylesheets are never fetched: a template must not make Herald open URLs.
_inliner = css_inline.CSSInliner(load_remote_stylesheets=False, keep_style_tags=False)
STYLE_BLOCK = re.compile(r"<style[^>]*>(.*?)</style>", re.IGNORECASE | re.DOTALL)


def inline_css(html: str) -> str:
    """`html` with its <style> rules moved onto the tags they match (a fragment stays a fragment)."""
    if "<style" not in html.lower():
        return html
    try:
        if "<html" in html.lower():
            return _inliner.inline(html)
        css = "\n".join(STYLE_BLOCK.findall(html))
        return _inliner.inline_fragment(STYLE_BLOCK.sub("", html), css)
    except ValueError:  # markup the inliner cannot read goes out as written
        return html


def text_of(html: str) -> str:
    """A plain-text part for an email written only in HTML: links kept as text, no images."""
    converter = html2text.HTML2Text()
    converter.ignore_images = True
    converter.body_width = 0
    return converter.handle(html).strip()


def diff(payload: dict) -> list[dict]:
    """{"pairs": [[where, old, new]…], "seconds"} → for each pair that differs, its lines as
    [kind, old line number, new line number, text] with kind in " ", "-", "+".

    Line-level Myers diff (diff-match-patch) with a deadline: past it the diff stays correct but
    may be coarser, so two large drafts cost at most `seconds`, never quadratic time.
    """
    matcher = diff_match_patch()
    matcher.Diff_Timeout = max(0.05, float(payload.get("seconds") or 1.0))
    tables = []
    for where, old, new in payload["pairs"]:
        if old == new:
            continue
        chars_old, chars_new, lines = matcher.diff_linesToChars(old, new)
        changes = matcher.diff_main(chars_old, chars_new, False)
        matcher.diff_charsToLines(changes, lines)
        rows, old_number, new_number = [], 1, 1
        for operation, text in changes:
            for line in text.splitlines():
                kind = {0: " ", -1: "-", 1: "+"}[operation]
                rows.append([kind, old_number if kind != "+" else None, new_number if kind != "-" else None, line])
                old_number += kind != "+"
                new_number += kind != "-"
        tables.append({"where": where, "rows": rows})
    return tables


SAMPLE_OF_FORMAT = {
    "date-time": "2030-01-15T09:30:00+00:00", "date": "2030-01-15", "time": "09:30:00+00:00",
    "email": "ada@example.com", "idn-email": "ada@example.com", "uri": "https://example.com/",
    "iri": "https://example.com/", "uri-reference": "https://example.com/", "uuid": "00000000-0000-4000-8000-000000000000",
    "ipv4": "192.0.2.1", "ipv6": "2001:db8::1", "hostname": "example.com", "duration": "P1D",
}
SAMPLE_OF_TYPE = {"string": "sample", "integer": 1, "number": 1.5, "boolean": True, "array": [], "object": {}, "null": None}


def sample(payload: dict):
    """{"schema"} → a value it accepts, for previewing and checking a version before it is published."""
    return sample_of(payload["schema"], 0)


def sample_of(schema, depth: int):
    """Taken from the schema where it says (`examples`, `enum`, `default`, `const`), else built from its
    types and formats; a property-by-property walk, since a generator library would guess values the
    template author never meant."""
    if not isinstance(schema, dict) or depth > 32:
        return None
    for key in ("examples", "enum"):
        if isinstance(schema.get(key), list) and schema[key]:
            return schema[key][0]
    for key in ("default", "const"):
        if key in schema:
            return schema[key]
    kind = schema.get("type")
    kind = kind[0] if isinstance(kind, list) and kind else kind
    if kind == "object" or (kind is None and ("properties" in schema or "required" in schema)):
        properties = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
        built = {name: sample_of(sub, depth + 1) for name, sub in properties.items()}
        required = schema.get("required") if isinstance(schema.get("required"), list) else []
        return {**{name: "sample" for name in required if isinstance(name, str)}, **built}
    if kind == "array":
        item = sample_of(schema.get("items") or {}, depth + 1)
        try:
            count = min(3, max(1, int(schema.get("minItems") or 1)))
        except (TypeError, ValueError):
            count = 1
        return [item] * count  # a sample, not a load test
    if kind in (None, "string") and schema.get("format") in SAMPLE_OF_FORMAT:
        return SAMPLE_OF_FORMAT[schema["format"]]
    if kind == "string" and isinstance(schema.get("minLength"), int) and schema["minLength"] > len("sample"):
        return "s" * min(schema["minLength"], 10_000)
    return json.loads(json.dumps(SAMPLE_OF_TYPE.get(kind, "sample")))

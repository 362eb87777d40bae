"""Template rendering, bounded in time, memory and output size whatever the template says.

Jinja2's sandbox stops a template from reaching outside, but not from spending: `{{ 3**10**8 }}`
ran for 76 s and `{{ 'a' * 10**9 }}` took a gigabyte, inside the web server or a worker lane.
So templates are compiled and rendered only in render processes (`render_child.py`): each caps
its own memory and output and stops at the time limit, and one that does not answer in time is
killed and replaced. The caller waits on a pipe, so other threads and the event loop run on.
"""

import json
import os
import queue
import re
import selectors
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

import css_inline
import html2text
from django.conf import settings

from templates_app.jinja_sandbox import HTML_FIELDS
from templates_app.models import Template

TEXT_FIELDS = ("subject", "title", "body")
# Killing and restarting a process that overran its time limit: this much grace for the alarm first.
KILL_GRACE_SECONDS = 0.5
# A new render process must be ready within this (imports on a busy machine); not a template's fault.
START_TIMEOUT_SECONDS = 15


class RenderError(Exception):
    """The template cannot be rendered with these variables; `bound` names a limit it broke."""

    def __init__(self, message: str, field: str = "", bound: str = ""):
        super().__init__(message)
        self.field = field
        self.bound = bound


@dataclass(frozen=True)
class Limits:
    time_seconds: float
    memory_bytes: int
    max_chars: int

    @classmethod
    def from_settings(cls) -> "Limits":
        return cls(
            settings.HERALD_RENDER_TIME_LIMIT_SECONDS,
            settings.HERALD_RENDER_MEMORY_MB * 1024 * 1024,
            settings.HERALD_RENDER_MAX_CHARS,
        )


class RenderProcess:
    """One child process that renders; used by one thread at a time (see `_pool`)."""

    def __init__(self, limits: Limits):
        self.limits = limits
        self.owner_pid = os.getpid()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "templates_app.render_child",
             str(limits.time_seconds), str(limits.memory_bytes), str(limits.max_chars)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            cwd=settings.BASE_DIR, env={**os.environ, "PYTHONPATH": str(settings.BASE_DIR)},
        )
        self.buffer = b""
        self.selector = selectors.DefaultSelector()  # select() fails on descriptors past 1024
        self.selector.register(self.process.stdout, selectors.EVENT_READ)
        if self._read_line(START_TIMEOUT_SECONDS) != b"ready":
            self.kill()
            raise RenderError("the render process did not start", bound="crash")

    @property
    def usable(self) -> bool:
        return self.owner_pid == os.getpid() and self.process.poll() is None

    def ask(self, request: dict) -> dict:
        """Send one request and wait for its answer; RenderError(bound="time") if none comes in time."""
        try:
            self.process.stdin.write(json.dumps(request).encode() + b"\n")
            self.process.stdin.flush()
        except (BrokenPipeError, OSError):
            self.kill()
            raise RenderError("the render process stopped unexpectedly", bound="crash") from None
        line = self._read_line(self.limits.time_seconds + KILL_GRACE_SECONDS)
        if line is None:
            self.kill()
            raise RenderError(f"rendering took longer than the limit of {self.limits.time_seconds:g} s", bound="time")
        answer = json.loads(line)
        if answer.get("restart"):
            self.kill()
        return answer

    def _read_line(self, timeout: float) -> bytes | None:
        """The next line from the process, None if none came within `timeout`; RenderError if it died."""
        deadline = time.monotonic() + timeout
        fd = self.process.stdout.fileno()
        while b"\n" not in self.buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self.selector.select(remaining):
                return None
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                self.kill()
                raise RenderError("the render process stopped while rendering", bound="crash")
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self.selector.close()
        for pipe in (self.process.stdin, self.process.stdout):
            try:
                pipe.close()
            except OSError:
                pass


class _Pool:
    """Idle render processes, so concurrent threads (web requests) never share a pipe."""

    def __init__(self, keep: int = 4):
        self.idle: queue.LifoQueue[RenderProcess] = queue.LifoQueue()
        self.keep = keep
        self.lock = threading.Lock()

    def ask(self, request: dict) -> dict:
        limits = Limits.from_settings()
        process = self._take(limits)
        try:
            answer = process.ask(request)
        except BaseException:
            process.kill()
            raise
        if process.usable and self.idle.qsize() < self.keep:
            self.idle.put(process)
        else:
            process.kill()
        return answer

    def _take(self, limits: Limits) -> RenderProcess:
        while True:
            try:
                process = self.idle.get_nowait()
            except queue.Empty:
                return RenderProcess(limits)
            if process.usable and process.limits == limits:
                return process
            process.kill()

    def close(self) -> None:
        while True:
            try:
                self.idle.get_nowait().kill()
            except queue.Empty:
                return


_pool = _Pool()


def _parts(fields: dict[str, str]) -> list[list[str]]:
    return [[field, source] for field, source in fields.items() if source]


def render(template: Template | dict, variables: dict, locale: str = "en", timezone: str = "UTC") -> dict[str, str]:
    """Render every non-empty part of `template` (a row or a version's content) with `variables`,
    formatting dates, numbers and money for a reader in `locale` and `timezone`; RenderError
    names what failed. An email's HTML gets its CSS inlined and, when no text part was written,
    a text part made from it."""
    parts = _parts({field: variant_field(template, field) or "" for field in TEXT_FIELDS + HTML_FIELDS})
    if not parts:
        return {}
    answer = _pool.ask({"mode": "render", "parts": parts, "variables": variables, "locale": locale, "timezone": timezone})
    if "error" in answer:
        field = answer.get("field", "")
        raise RenderError(f"{template} {field}: {answer['error']}", field=field, bound=answer.get("bound", ""))
    rendered = answer["ok"]
    if rendered.get("html_body"):
        rendered["html_body"] = inline_css(rendered["html_body"])
        if not rendered.get("body", "").strip():
            rendered["body"] = text_of(rendered["html_body"])
    return rendered


# Many mail clients (Gmail's apps, Outlook) drop <style> blocks: styles must sit on each tag.
# Remote stylesheets are never fetched: a template must not make the worker open URLs.
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


def template_problem(fields: dict[str, str]) -> tuple[str, str] | None:
    """(field, message) if a part does not compile or breaks a render limit on its own; else None.

    Each part is also rendered once with every variable undefined, so what a template costs
    regardless of its variables (`{{ 'a' * 10**9 }}`, loops over big ranges) is refused when it
    is saved, not when it is first sent.
    """
    for field, source in _parts(fields):
        try:
            answer = _pool.ask({"mode": "check", "parts": [[field, source]]})
        except RenderError as exc:
            return field, f"Template refused: {exc}"
        if "error" in answer:
            prefix = "Template refused: " if answer.get("bound") else ""
            return field, prefix + answer["error"]
    return None


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

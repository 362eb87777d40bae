"""JSON from outside, refused or scrubbed before it can reach PostgreSQL or a recursion limit.

PostgreSQL's jsonb and text refuse NUL characters and Python cannot encode a lone surrogate
(`\\ud800`) as UTF-8, so either one inside any string would otherwise surface as a 500 at the
INSERT. NaN and Infinity are not JSON and jsonb refuses them too. Deep nesting is refused
before anything walks the structure recursively.
"""

import json
import math
import re
from typing import Any

MAX_DEPTH = 64
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


class JsonRefused(ValueError):
    def __init__(self, message: str, path: str | None = None):
        super().__init__(message)
        self.path = path


def parse(text: str | bytes) -> Any:
    """Parse JSON and check every key and string; JsonRefused names the first bad place."""
    value = parse_unchecked(text)
    check(value)
    return value


class Unstorable:
    """Where a number no database can hold stood (NaN, Infinity, 1e400), left for `check` to name,
    so that one item of a list can be refused without refusing the others."""

    def __init__(self, reason: str):
        self.reason = reason


def parse_unchecked(text: str | bytes) -> Any:
    """Parse JSON, leaving unstorable numbers as `Unstorable` and strings unchecked: `check` each part."""
    try:
        return json.loads(text, parse_constant=lambda name: Unstorable(f"{name} is not a JSON number."),
                          parse_float=_finite_or_unstorable)
    except RecursionError:
        raise JsonRefused(f"JSON nested deeper than {MAX_DEPTH} levels.") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise JsonRefused(str(exc)) from None


def _finite_or_unstorable(literal: str) -> float | Unstorable:
    number = float(literal)  # 1e400 is valid JSON, but no database or client can hold it
    return Unstorable(f"{literal} is too large a number.") if math.isinf(number) else number


def array_items(text: str, key: str) -> list[str] | None:
    """The source of each element of the top-level object's array `key`, found in one linear pass
    without recursion; None if the text is not shaped so. For bodies nested too deep to parse
    whole, so each element can be parsed (and refused) on its own. Written here: no JSON library
    splits an array's elements without building them."""
    depth, in_string, escaped, last_string, string_start = 0, False, False, None, 0
    collecting, items, start = False, [], None
    for index, char in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
                if depth == 1:
                    last_string = text[string_start:index]
            continue
        if char == '"':
            in_string, string_start = True, index + 1
            if collecting and depth == 2 and start is None:
                start = index
        elif char in "[{":
            if depth == 1 and char == "[" and last_string == key and not collecting:
                collecting = True
            elif collecting and depth == 2 and start is None:
                start = index
            depth += 1
        elif char in "]}":
            depth -= 1
            if collecting and depth == 1:
                if start is not None:
                    items.append(text[start:index].strip())
                return items
        elif char == "," and collecting and depth == 2:
            items.append(text[start:index].strip() if start is not None else "")
            start = None
        elif collecting and depth == 2 and start is None and not char.isspace():
            start = index
    return None


def _join(path: str, key) -> str:
    return f"{path}.{key}" if path else str(key)


def check(value: Any) -> None:
    """JsonRefused if `value` nests deeper than MAX_DEPTH or holds a string PostgreSQL cannot store."""
    stack = [(value, "", 0)]
    while stack:
        item, path, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise JsonRefused(f"JSON nested deeper than {MAX_DEPTH} levels.", path or None)
        if isinstance(item, Unstorable):
            raise JsonRefused(item.reason, path or None)
        if isinstance(item, str):
            if UNSTORABLE.search(item):
                raise JsonRefused("Strings may not contain NUL characters or unpaired surrogates.", path or None)
        elif isinstance(item, dict):
            for key, child in item.items():
                if UNSTORABLE.search(key):
                    raise JsonRefused("Keys may not contain NUL characters or unpaired surrogates.", path or None)
                stack.append((child, _join(path, key), depth + 1))
        elif isinstance(item, list):
            stack.extend((child, _join(path, index), depth + 1) for index, child in enumerate(item))


def scrub(value: Any, depth: int = 0) -> Any:
    """A copy with unstorable characters replaced by U+FFFD and nesting cut at MAX_DEPTH.

    For what a provider signed: the event is genuine, so it is kept rather than refused.
    """
    if isinstance(value, str):
        return UNSTORABLE.sub("\ufffd", value)
    if depth >= MAX_DEPTH and isinstance(value, (dict, list)):
        return None
    if isinstance(value, dict):
        return {scrub(key): scrub(child, depth + 1) for key, child in value.items()}
    if isinstance(value, list):
        return [scrub(child, depth + 1) for child in value]
    return value

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


def _no_constants(name: str):
    raise JsonRefused(f"{name} is not a JSON number.")


def _finite(literal: str) -> float:
    number = float(literal)
    if math.isinf(number):  # 1e400: valid JSON, but no database or client can hold it
        raise JsonRefused(f"{literal} is too large a number.")
    return number


def parse(text: str | bytes) -> Any:
    """Parse JSON and check every key and string; JsonRefused names the first bad place."""
    try:
        value = json.loads(text, parse_constant=_no_constants, parse_float=_finite)
    except RecursionError:
        raise JsonRefused(f"JSON nested deeper than {MAX_DEPTH} levels.") from None
    except JsonRefused:
        raise
    except (ValueError, UnicodeDecodeError) as exc:
        raise JsonRefused(str(exc)) from None
    check(value)
    return value


def _join(path: str, key) -> str:
    return f"{path}.{key}" if path else str(key)


def check(value: Any) -> None:
    """JsonRefused if `value` nests deeper than MAX_DEPTH or holds a string PostgreSQL cannot store."""
    stack = [(value, "", 0)]
    while stack:
        item, path, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise JsonRefused(f"JSON nested deeper than {MAX_DEPTH} levels.", path or None)
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

"""Variables' JSON Schemas: checked when a template is saved, applied when a notification is accepted.

Schemas come from API callers and run in the web process against caller-supplied variables, so
a `pattern` like `(a+)+$` would backtrack for minutes inside a request. Patterns are evaluated
with RE2 (google-re2), which runs in linear time; a pattern RE2 cannot express (backreferences,
lookaround) is refused when the schema is saved.
"""

import re
from datetime import datetime
from functools import lru_cache
from urllib.parse import urlsplit

import re2
from jsonschema import Draft202012Validator, FormatChecker, validators
from jsonschema.exceptions import SchemaError, ValidationError

_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False


@lru_cache(maxsize=512)
def _regex(pattern: str):
    return re2.compile(pattern, options=_RE2_OPTIONS)


def _pattern(validator, pattern, instance, schema):
    if validator.is_type(instance, "string") and not _regex(pattern).search(instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _pattern_properties(validator, pattern_properties, instance, schema):
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in pattern_properties.items():
        for key, value in instance.items():
            if _regex(pattern).search(key):
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


# A declared `format` is checked, so a value the template's filters cannot read (`{{ at|datetime }}`
# with "not-a-date") is a 400 at accept, not a failed render later. jsonschema checks date-time
# and uri only with extra packages; these two are small enough to check here. `regex` is left out:
# compiling a caller's pattern with Python's engine is what RE2 is used to avoid.
FORMATS = FormatChecker([name for name in FormatChecker.checkers if name != "regex"])
RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})", re.ASCII)
URI_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:", re.ASCII)


@FORMATS.checks("date-time", raises=ValueError)
def is_date_time(value) -> bool:
    if not isinstance(value, str):
        return True
    if not RFC3339.fullmatch(value):
        return False
    datetime.fromisoformat(value.replace("z", "Z").replace("Z", "+00:00"))
    return True


@FORMATS.checks("uri", raises=ValueError)
def is_uri(value) -> bool:
    if not isinstance(value, str):
        return True
    return bool(URI_SCHEME.match(value)) and not any(c.isspace() for c in value) and bool(urlsplit(value).scheme)


LinearTimeValidator = validators.extend(
    Draft202012Validator, {"pattern": _pattern, "patternProperties": _pattern_properties},
)


def _patterns(schema) -> list[str]:
    found, stack = [], [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if isinstance(node.get("pattern"), str):
                found.append(node["pattern"])
            if isinstance(node.get("patternProperties"), dict):
                found.extend(node["patternProperties"])
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


def schema_error(schema: dict) -> str | None:
    """Return why `schema` is not a valid JSON Schema (or uses a pattern RE2 cannot run), or None."""
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        return exc.message
    for pattern in _patterns(schema):
        try:
            _regex(pattern)
        except re2.error as exc:
            return f"pattern {pattern!r} is not supported (patterns run in linear time, without backreferences or lookaround): {exc}"
    return None


def variable_errors(schema: dict, variables: dict) -> list[tuple[str, str]]:
    """(field, message) for each way `variables` fails `schema`; fields look like `variables.order.id`."""
    if not schema:
        return []
    errors = []
    try:
        found = sorted(LinearTimeValidator(schema, format_checker=FORMATS).iter_errors(variables),
                       key=lambda e: list(e.absolute_path))
    except re2.error as exc:  # a schema saved before patterns were checked
        return [("variables", f"the template's schema has a pattern that cannot be evaluated: {exc}")]
    for error in found:
        path = [str(part) for part in error.absolute_path]
        if error.validator == "required":
            # "'order_id' is a required property" → name the missing variable itself.
            missing = error.message.split("'")[1] if "'" in error.message else ""
            path.append(missing)
            message = f"missing required variable {'.'.join(path)!r}"
        else:
            message = error.message
        errors.append((".".join(["variables", *path]), message))
    return errors

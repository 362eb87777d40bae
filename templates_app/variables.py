"""Variables' JSON Schemas: checked when a template is saved, applied when a notification is accepted.

Schemas come from API callers and run in the web process against caller-supplied variables, so
a `pattern` like `(a+)+$` would backtrack for minutes inside a request. Patterns are evaluated
with RE2 (google-re2), which runs in linear time; a pattern RE2 cannot express (backreferences,
lookaround) is refused when the schema is saved.
"""

from functools import lru_cache

import re2
from jsonschema import Draft202012Validator, validators
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
        found = sorted(LinearTimeValidator(schema).iter_errors(variables), key=lambda e: list(e.absolute_path))
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

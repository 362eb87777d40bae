from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError


def schema_error(schema: dict) -> str | None:
    """Return why `schema` is not a valid JSON Schema, or None."""
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        return exc.message
    return None


def variable_errors(schema: dict, variables: dict) -> list[tuple[str, str]]:
    """(field, message) for each way `variables` fails `schema`; fields look like `variables.order.id`."""
    if not schema:
        return []
    errors = []
    for error in sorted(Draft202012Validator(schema).iter_errors(variables), key=lambda e: list(e.absolute_path)):
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

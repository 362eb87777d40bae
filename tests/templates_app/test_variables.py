"""A template's variables checked against its JSON Schema."""

from templates_app.variables import schema_error, variable_errors


def test_variable_errors_name_the_missing_or_wrong_variable():
    schema = {
        "type": "object",
        "required": ["order"],
        "properties": {"order": {"type": "object", "required": ["id"], "properties": {"id": {"type": "integer"}}}},
    }
    assert variable_errors(schema, {})[0][0] == "variables.order"
    assert variable_errors(schema, {"order": {}})[0][0] == "variables.order.id"
    assert variable_errors(schema, {"order": {"id": "x"}})[0][0] == "variables.order.id"
    assert variable_errors(schema, {"order": {"id": 1}}) == []
    assert variable_errors({}, {"anything": 1}) == []


def test_invalid_json_schemas_are_reported():
    assert schema_error({"type": "nonsense"}) is not None
    assert schema_error({"type": "object"}) is None

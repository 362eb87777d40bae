"""Templates over the REST API."""

import pytest


@pytest.mark.django_db
def test_templates_are_created_listed_and_fetched_by_name(api):
    body = {"name": "receipt", "channel": "email", "subject": "Order {{ id }}", "body": "Thanks for order {{ id }}",
            "variables_schema": {"type": "object", "required": ["id"]}}

    created = api.post("/api/v1/templates", body, format="json")
    duplicate = api.post("/api/v1/templates", body, format="json")
    api.post("/api/v1/templates", {**body, "channel": "sms", "subject": ""}, format="json")

    assert created.status_code == 201
    assert duplicate.status_code == 409
    assert duplicate.json()["error"]["code"] == "template_exists"
    assert len(api.get("/api/v1/templates").json()["results"]) == 2
    assert len(api.get("/api/v1/templates?channel=sms").json()["results"]) == 1
    detail = api.get("/api/v1/templates/receipt").json()
    assert [v["channel"] for v in detail["variants"]] == ["email", "sms"]
    assert api.get("/api/v1/templates/missing").status_code == 404


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"body": "Hi {{ name"}, "body"),
        ({"html_body": "{% if %}"}, "html_body"),
        ({"subject": ""}, "subject"),
        ({"variables_schema": {"type": 12}}, "variables_schema"),
        ({"channel": "pager"}, "channel"),
    ],
)
def test_bad_templates_are_400_naming_the_field(api, override, field):
    body = {"name": "t", "channel": "email", "subject": "s", "body": "b", **override}

    response = api.post("/api/v1/templates", body, format="json")

    assert response.status_code == 400, response.content
    assert response.json()["error"]["field"] == field

"""How /api/schema/ documents what operations share: error responses, list bodies, authentication."""

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import serializers


class Error(serializers.Serializer):
    code = serializers.CharField(help_text="Stable and machine-readable, e.g. `invalid_choice` or `not_found`.")
    message = serializers.CharField()
    field = serializers.CharField(allow_null=True, help_text="The body field, parameter or header at fault, if one is.")
    details = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()), required=False,
        help_text='Validation errors: every message per field ("non_field" for the body as a whole).',
    )
    current_version = serializers.IntegerField(required=False, help_text="412 only: the version now stored.")


class ErrorResponse(serializers.Serializer):
    """The body of every 4xx and 5xx answer of the API (core.errors)."""

    error = Error()


def error(description: str) -> OpenApiResponse:
    """An error response in the shape of core.errors, for codes particular to one view."""
    return OpenApiResponse(ErrorResponse, description)


def results_of(name: str, item: type[serializers.Serializer]) -> serializers.Serializer:
    """The `{"results": [...]}` body of a list that is not paginated."""
    return inline_serializer(name, {"results": item(many=True)})


class HeraldAutoSchema(AutoSchema):
    """Adds to each operation the error responses that middleware, DRF and authentication give it.

    Errors particular to one view (a 409, a 412) are declared on that view with `error()`.
    """

    def get_operation(self, *args, **kwargs):
        operation = super().get_operation(*args, **kwargs)
        if operation is None:
            return None
        responses = operation["responses"]
        for status_code, description in self.shared_errors(operation).items():
            responses.setdefault(str(status_code), self._get_response_for_code(error(description), str(status_code)))
        operation["responses"] = dict(sorted(responses.items()))
        return operation

    def get_description(self) -> str:
        description = super().get_description()
        scope = getattr(self.view, "required_scopes", {}).get(self.method)
        return f"{description}\n\nNeeds an API key with the `{scope}` scope.".strip() if scope else description

    def get_operation_id(self) -> str:
        operation_id = super().get_operation_id()
        body = self.get_response_serializers()
        if self.method == "GET" and isinstance(body, serializers.Serializer) and "results" in body.fields:
            return operation_id.removesuffix("_retrieve") + "_list"
        return operation_id

    def shared_errors(self, operation: dict) -> dict[int, str]:
        errors = {
            400: "Invalid input: a body or parameter that fails validation, or a control character in the URL.",
            406: "The Accept header names no media type the API answers with (it answers JSON).",
        }
        if "{" in self.path or getattr(self.view, "pagination_class", None):
            errors[404] = "No such resource, a path parameter the URL does not take, or an invalid cursor."
        if self.method in ("POST", "PUT", "PATCH"):
            errors[413] = "The request body is too large."
        if "requestBody" in operation:
            errors[415] = "The request body is not of a media type this operation takes."
        schemes = {name for requirement in operation.get("security", []) for name in requirement}
        if "apiKey" in schemes:
            errors[401] = "The API key is missing, invalid or revoked."
            errors[403] = "The API key lacks the scope this operation needs."
            errors[429] = "Too many failed API keys from this address; retry after Retry-After seconds."
        if "inboxToken" in schemes:
            errors[401] = "The inbox token is missing, invalid or expired."
        return errors

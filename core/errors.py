"""Every API error is JSON shaped {"error": {"code", "message", "field"}}."""

import json
import logging

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response

log = logging.getLogger(__name__)


class ApiError(exceptions.APIException):
    def __init__(self, status_code: int, code: str, message: str, field: str | None = None):
        self.status_code = status_code
        self.code = code
        self.field = field
        super().__init__(detail=message, code=code)


def error_body(code: str, message: str, field: str | None = None, **extra) -> dict:
    return {"error": {"code": code, "message": message, "field": field, **extra}}


def _flatten(detail, prefix: str = "") -> list[tuple[str | None, str, str]]:
    """DRF's nested error detail as (field, message, code) triples, fields dotted."""
    if isinstance(detail, dict):
        out = []
        for key, value in detail.items():
            name = None if key == "non_field_errors" else (f"{prefix}.{key}" if prefix else str(key))
            out += _flatten(value, name or prefix)
        return out
    if isinstance(detail, list):
        out = []
        for value in detail:
            out += _flatten(value, prefix)
        return out
    return [(prefix or None, str(detail), getattr(detail, "code", "invalid"))]


def validation_error_body(detail, prefix: str = "") -> dict:
    """A DRF ValidationError's detail as the error body, naming the first field (under `prefix`)."""
    errors = _flatten(detail, prefix)
    field, message, code = errors[0] if errors else (prefix or None, "Invalid request.", "invalid")
    details = {}
    for f, m, _ in errors:
        details.setdefault(f or "non_field", []).append(m)
    return error_body(code, f"{field}: {message}" if field else message, field, details=details)


def api_exception_handler(exc, context):
    if isinstance(exc, RequestDataTooBig):
        return Response(json.loads(payload_too_large().content), status=413)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    if isinstance(exc, ApiError):
        return Response(error_body(exc.code, str(exc.detail), exc.field), status=exc.status_code)
    if isinstance(exc, exceptions.ValidationError):
        return Response(validation_error_body(exc.detail), status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, exceptions.ParseError):
        return Response(error_body("malformed_json", f"Body is not valid JSON: {exc.detail}"), status=400)
    if isinstance(exc, (exceptions.NotAuthenticated, exceptions.AuthenticationFailed)):
        return Response(
            error_body("unauthorized", str(exc.detail)),
            status=401,
            headers={"WWW-Authenticate": 'Bearer realm="herald"'},
        )
    if isinstance(exc, exceptions.APIException):
        code = exc.default_code if isinstance(exc.detail, (list, dict)) else getattr(exc.detail, "code", exc.default_code)
        headers = {}
        if getattr(exc, "wait", None):
            headers["Retry-After"] = str(int(exc.wait))
        return Response(error_body(code, str(exc.detail)), status=exc.status_code, headers=headers)
    return None


def json_404(request, exception=None):
    return JsonResponse(error_body("not_found", f"No such resource: {request.path}"), status=404)


def json_500(request):
    return JsonResponse(error_body("server_error", "Internal error; it has been logged."), status=500)


def payload_too_large(limit_bytes: int | None = None) -> JsonResponse:
    """413 naming the limit the body broke: the API's (API_MAX_BODY_BYTES) unless another applied."""
    limit = (settings.API_MAX_BODY_BYTES if limit_bytes is None else limit_bytes) // 1024
    return JsonResponse(
        {"error": {"code": "payload_too_large", "message": f"Request body exceeds {limit} KiB.", "field": None}},
        status=413,
    )

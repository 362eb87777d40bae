"""API key authentication and scope checks for the REST API."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions, permissions

from core import throttle
from core.auth import BearerAuthentication
from core.errors import ApiError
from notifications.models import ApiKey, hash_api_key


class ServiceUser:
    """The calling backend service, as DRF's request.user."""

    is_authenticated = True
    is_anonymous = False

    def __init__(self, api_key: ApiKey):
        self.api_key = api_key

    def __str__(self) -> str:
        return str(self.api_key)


class ApiKeyAuthentication(BearerAuthentication):
    credential_name = "api key"

    def before_credential(self, request) -> None:
        wait = throttle.seconds_blocked("api_key", request)
        if wait:
            raise exceptions.Throttled(wait, "Too many failed API keys from your address.")

    def authenticate_credential(self, request, credential: str):
        key = ApiKey.objects.filter(key_hash=hash_api_key(credential)).first()
        if key is None or key.is_revoked:
            throttle.record_failure("api_key", request)
            raise exceptions.AuthenticationFailed("Invalid API key." if key is None else "This API key has been revoked.")
        return ServiceUser(key), key


class HasScope(permissions.BasePermission):
    """Views declare `required_scopes = {"GET": "users:read", ...}`; the key must hold that scope."""

    def has_permission(self, request, view):
        if not isinstance(request.auth, ApiKey):
            raise exceptions.NotAuthenticated("Missing API key: send 'Authorization: Bearer <api key>'.")
        scopes = getattr(view, "required_scopes", {})
        method = "GET" if request.method == "HEAD" else request.method
        needed = scopes.get(method)
        if needed is None and method not in ("OPTIONS",) and scopes:
            raise ApiError(405, "method_not_allowed", f"{request.method} is not supported here.")
        if needed and needed not in request.auth.scopes:
            raise ApiError(403, "insufficient_scope", f"This API key lacks the {needed!r} scope.")
        return True


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "notifications.auth.ApiKeyAuthentication"
    name = "apiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http", "scheme": "bearer",
            "description": "An API key (`hk_…`), sent as `Authorization: Bearer <api key>`; each operation needs one scope.",
        }

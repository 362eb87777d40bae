"""API key authentication and scope checks for the REST API."""

import time

from django.conf import settings
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


# Valid keys seen by this process lately: hash → (good until, key). A key revoked or changed
# in admin takes effect here within HERALD_API_KEY_CACHE_SECONDS; unknown keys are not cached.
_recent_keys: dict[str, tuple[float, ApiKey]] = {}


def recently_checked_key(credential: str) -> ApiKey | None:
    cached = _recent_keys.get(hash_api_key(credential))
    return cached[1] if cached is not None and cached[0] > time.monotonic() else None


def forget_api_key(key: ApiKey) -> None:
    _recent_keys.pop(key.key_hash, None)


def find_api_key(credential: str) -> ApiKey | None:
    digest = hash_api_key(credential)
    now = time.monotonic()
    key = ApiKey.objects.filter(key_hash=digest).first()
    if key is not None and not key.is_revoked and settings.HERALD_API_KEY_CACHE_SECONDS > 0:
        if len(_recent_keys) >= 1000:
            _recent_keys.clear()
        _recent_keys[digest] = (now + settings.HERALD_API_KEY_CACHE_SECONDS, key)
    return key


class ApiKeyAuthentication(BearerAuthentication):
    """A valid key always authenticates; failed keys are limited per client address.

    The key is checked before the limit is consulted: behind a NAT a stranger's bad guesses
    share the customer backend's address, and must not lock its valid key out. A client over
    the limit gets 429 with Retry-After for each further invalid key.
    """

    credential_name = "api key"

    def authenticate(self, request):
        # A key this process checked moments ago needs no database read.
        scheme, _, raw = request.headers.get("Authorization", "").partition(" ")
        known = recently_checked_key(raw.strip()) if scheme == "Bearer" else None
        if known is not None:
            return ServiceUser(known), known
        return super().authenticate(request)

    def authenticate_credential(self, request, credential: str):
        key = recently_checked_key(credential) or find_api_key(credential)
        if key is not None and not key.is_revoked:
            return ServiceUser(key), key
        address = throttle.client_address(request)
        wait = throttle.seconds_blocked("api_key", address)
        if wait:
            raise exceptions.Throttled(wait, "Too many failed API keys from your address.")
        throttle.record_failure("api_key", address)
        raise exceptions.AuthenticationFailed("Invalid API key." if key is None else "This API key has been revoked.")


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

import logging
import re
import secrets

from django.conf import settings
from django.core import signing
from django.core.exceptions import RequestDataTooBig
from django.http import HttpResponse, JsonResponse
from django.urls import reverse
from psycopg.errors import QueryCanceled

from core import bounded, database_outage, throttle
from core.errors import payload_too_large


class HealthChecksForAnyHost:
    """/health, /health/ready and /metrics answer whatever the Host header says.

    Container healthchecks and orchestrators call them by 127.0.0.1 or a pod address, which
    DJANGO_ALLOWED_HOSTS need not list (and overriding it broke the compose healthcheck). The
    host check guards the URLs Django builds from the Host header; these views build none.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.method in ("GET", "HEAD"):
            from config import health, metrics_http

            view = {"/health": health.live, "/health/ready": health.ready, "/metrics": metrics_http.metrics}.get(request.path_info)
            if view is not None:
                return view(request)
        return self.get_response(request)


class ApiBodySizeLimit:
    """Refuse oversized API bodies with 413 before a view parses them.

    Provider receipt webhooks are exempt up to DATA_UPLOAD_MAX_MEMORY_SIZE: SendGrid batches
    events into posts far larger than any API request.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path.startswith("/api/") and not request.path.startswith("/api/v1/webhooks/"):
            limit = settings.API_BULK_MAX_BODY_BYTES if request.path.startswith(settings.API_BULK_PATHS) else settings.API_MAX_BODY_BYTES
            try:
                length = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                length = 0
            if length > limit:
                return payload_too_large(limit)
            if not length and request.method in ("POST", "PUT", "PATCH"):
                try:  # chunked: no length announced, so measure (bounded by DATA_UPLOAD_MAX_MEMORY_SIZE)
                    if len(request.body) > limit:
                        return payload_too_large(limit)
                except RequestDataTooBig:
                    return payload_too_large(limit)
        return self.get_response(request)


class RefuseUnstorableUrls:
    """400 for a path or query parameter holding a control character or an unpaired surrogate.

    A NUL in `/api/v1/users/a%00b` would otherwise reach PostgreSQL, which refuses it with an
    error that surfaces as a 500; no legitimate id or filter contains such characters.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if UNSAFE_URL_CHARACTERS.search(request.path):
            return bad_url("path", "The URL path contains a control character.")
        for name, values in request.GET.lists():
            if UNSAFE_URL_CHARACTERS.search(name) or any(UNSAFE_URL_CHARACTERS.search(v) for v in values):
                return bad_url(name if not UNSAFE_URL_CHARACTERS.search(name) else "query",
                               f"Query parameter {name!r} contains a control character.")
        return self.get_response(request)


UNSAFE_URL_CHARACTERS = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")


def bad_url(field: str, message: str) -> JsonResponse:
    return JsonResponse({"error": {"code": "invalid_url", "message": message, "field": field}}, status=400)


class ThrottleAdminLogin:
    """Failed admin logins are limited per (username, client address), and never lock out a
    browser that has signed in before: OWASP's "device cookies".

    A successful login leaves a signed cookie naming the user (ADMIN_DEVICE_COOKIE). A login
    attempt that carries a valid one for the username it tries is charged to that browser
    alone, so strangers failing for the same username, even from the same address (a NAT),
    cannot lock its owner out. Every other attempt is charged to (username, address). Once
    over HERALD_AUTH_FAILURE_LIMIT within the window, further attempts get 429 with Retry-After
    without their password being checked.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.method != "POST" or request.path != reverse("admin:login"):
            return self.get_response(request)
        username = request.POST.get("username", "")[:150]
        subject = admin_login_subject(request, username)
        wait = throttle.seconds_blocked("admin", subject)
        if wait:
            response = HttpResponse(
                f"Too many failed logins for this account from your browser or address; try again in {wait} seconds.\n",
                status=429, content_type="text/plain",
            )
            response["Retry-After"] = str(wait)
            return response
        response = self.get_response(request)
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated and response.status_code in (301, 302, 303):
            throttle.forget_failures("admin", subject)
            set_admin_device_cookie(response, user.get_username())
        elif response.status_code == 200:  # the form again: wrong password, unknown or inactive user
            throttle.record_failure("admin", subject)
        return response


ADMIN_DEVICE_COOKIE = "herald_admin_device"
ADMIN_DEVICE_SALT = "herald.admin-device"
ADMIN_DEVICE_MAX_AGE_SECONDS = 365 * 86400


def admin_login_subject(request, username: str) -> str:
    """What a login attempt's failure is charged to: the signed-in-before browser, or (username, address)."""
    try:
        device = signing.loads(request.COOKIES.get(ADMIN_DEVICE_COOKIE, ""), salt=ADMIN_DEVICE_SALT,
                               max_age=ADMIN_DEVICE_MAX_AGE_SECONDS)
    except signing.BadSignature:
        device = None
    if isinstance(device, dict) and device.get("user") == username and isinstance(device.get("device"), str):
        return f"device:{device['device']}"
    return f"user:{username}\naddress:{throttle.client_address(request)}"


def set_admin_device_cookie(response, username: str) -> None:
    value = signing.dumps({"user": username, "device": secrets.token_urlsafe(16)}, salt=ADMIN_DEVICE_SALT)
    response.set_cookie(
        ADMIN_DEVICE_COOKIE, value, max_age=ADMIN_DEVICE_MAX_AGE_SECONDS, path=reverse("admin:index"),
        secure=settings.SESSION_COOKIE_SECURE, httponly=True, samesite="Lax",
    )


class ServiceUnavailableDuringOutages:
    """503 with Retry-After, quickly, when PostgreSQL or Redis cannot be reached.

    Every wait on them is bounded (DATABASE_WAIT_SECONDS, HERALD_REDIS_TIMEOUT_SECONDS), so the
    request that finds an outage learns of it in about a second; the ones after it are refused
    before they touch the database until it answers again (core/database_outage.py). The client
    is told to come back rather than handed a 500. Nothing was accepted, so retrying is safe (and
    idempotency keys make it safe even if the outage began after the commit).
    """

    RETRY_AFTER_SECONDS = 2
    # Answered without the database, so they say how this process sees things during an outage.
    WITHOUT_DATABASE = ("/health", "/health/ready")

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if database_outage.refusing() and request.path not in self.WITHOUT_DATABASE:
            return self.unavailable("The database")
        return self.get_response(request)

    def process_exception(self, request, exception):
        from django.db import InterfaceError, OperationalError
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError

        if isinstance(exception, (OperationalError, InterfaceError)):
            what = "The database"
            if not isinstance(exception.__cause__, QueryCanceled):
                database_outage.went_away(exception)
        elif isinstance(exception, (RedisConnectionError, RedisTimeoutError)):
            what = "Redis"
        else:
            return None
        logging.getLogger(__name__).warning("%s %s: %s unavailable: %s", request.method, request.path, what, exception)
        return self.unavailable(what)

    def unavailable(self, what: str) -> JsonResponse:
        response = JsonResponse(
            {"error": {"code": "service_unavailable", "message": f"{what} is unavailable; retry shortly.", "field": None}},
            status=503,
        )
        response["Retry-After"] = str(self.RETRY_AFTER_SECONDS)
        return response


class BoundedWorkPerRequest:
    """One budget per request for work on author or caller content (core/bounded.py), and a 503
    with Retry-After when every host-wide slot for such heavy requests is taken."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        with bounded.budget(settings.HERALD_REQUEST_WORK_BUDGET_SECONDS, web=True):
            return self.get_response(request)

    def process_exception(self, request, exception):
        if not isinstance(exception, bounded.Busy):
            return None
        response = JsonResponse({"error": {"code": "busy", "message": str(exception), "field": None}}, status=503)
        response["Retry-After"] = str(exception.retry_after)
        return response

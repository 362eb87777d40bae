from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import JsonResponse


class ApiBodySizeLimit:
    """Refuse oversized API bodies with 413 before a view parses them.

    Provider receipt webhooks are exempt up to DATA_UPLOAD_MAX_MEMORY_SIZE: SendGrid batches
    events into posts far larger than any API request.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path.startswith("/api/") and not request.path.startswith("/api/v1/webhooks/"):
            try:
                length = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                length = 0
            if length > settings.API_MAX_BODY_BYTES:
                return payload_too_large()
            if not length and request.method in ("POST", "PUT", "PATCH"):
                try:  # chunked: no length announced, so measure (bounded by DATA_UPLOAD_MAX_MEMORY_SIZE)
                    if len(request.body) > settings.API_MAX_BODY_BYTES:
                        return payload_too_large()
                except RequestDataTooBig:
                    return payload_too_large()
        return self.get_response(request)


def payload_too_large() -> JsonResponse:
    limit = settings.API_MAX_BODY_BYTES // 1024
    return JsonResponse(
        {"error": {"code": "payload_too_large", "message": f"Request body exceeds {limit} KiB.", "field": None}},
        status=413,
    )

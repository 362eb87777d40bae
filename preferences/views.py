import re

from django.core import signing
from django.core.exceptions import ValidationError
from django.db import transaction
from django.shortcuts import get_object_or_404, render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status as http
from rest_framework.response import Response
from rest_framework.views import APIView

from core.errors import ApiError, error_body
from core.openapi import error
from preferences import editing, privacy, store, unsubscribe
from preferences.models import USER_ID, Device, Recipient
from preferences.serializers import (
    DeviceRequest,
    DeviceView,
    PreferencesRequest,
    PreferencesView,
    RecipientRequest,
    RecipientView,
)
from preferences.snapshot import Choices

FIELD_NAMES = {"active": "is_active"}


def recipient_or_404(user_id: str) -> Recipient:
    return get_object_or_404(Recipient.objects.prefetch_related("devices"), external_id=user_id)


class RecipientDetail(APIView):
    required_scopes = {"GET": "users:read", "PUT": "users:write", "DELETE": "users:write"}

    @extend_schema(responses=RecipientView)
    def get(self, request, user_id):
        """A user's contact details and devices."""
        return Response(RecipientView(recipient_or_404(user_id)).data)

    @extend_schema(
        request=RecipientRequest,
        responses={200: OpenApiResponse(RecipientView, "Updated."), 201: OpenApiResponse(RecipientView, "Created.")},
    )
    def put(self, request, user_id):
        """Create or update a user. Fields left out keep their current value."""
        try:
            USER_ID(user_id)
        except ValidationError:
            raise ApiError(400, "invalid", "user_id must be 1-255 letters, digits or _ . @ : + -", "user_id") from None
        serializer = RecipientRequest(data=request.data)
        serializer.is_valid(raise_exception=True)
        fields = {FIELD_NAMES.get(k, k): v for k, v in serializer.validated_data.items()}
        with transaction.atomic():
            recipient, created = Recipient.objects.select_for_update().get_or_create(external_id=user_id, defaults=fields)
            if not created and fields:
                for name, value in fields.items():
                    setattr(recipient, name, value)
                recipient.save()
        return Response(
            RecipientView(recipient_or_404(user_id)).data,
            status=http.HTTP_201_CREATED if created else http.HTTP_200_OK,
        )

    @extend_schema(responses={204: None})
    def delete(self, request, user_id):
        """Erase the user's personal data (right to erasure). Anonymous delivery counts are kept."""
        privacy.erase_recipient(get_object_or_404(Recipient, external_id=user_id))
        return Response(status=http.HTTP_204_NO_CONTENT)


class RecipientExport(APIView):
    required_scopes = {"GET": "users:read"}

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request, user_id):
        """Everything Herald holds about the user, as JSON (right of access)."""
        return Response(privacy.export_recipient(get_object_or_404(Recipient, external_id=user_id)))


class DeviceList(APIView):
    required_scopes = {"POST": "users:write"}

    @extend_schema(
        request=DeviceRequest,
        responses={
            200: OpenApiResponse(DeviceView, "The token was known; it now belongs to this user."),
            201: OpenApiResponse(DeviceView, "Registered."),
        },
    )
    def post(self, request, user_id):
        """Register a push token for the user; a token seen on another user moves to this one."""
        recipient = get_object_or_404(Recipient, external_id=user_id)
        serializer = DeviceRequest(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        device, created = Device.objects.update_or_create(
            token=data["token"],
            defaults={
                "recipient": recipient, "platform": data["platform"],
                "is_active": True, "invalidated_reason": "", "invalidated_at": None,
            },
        )
        return Response(DeviceView(device).data, status=http.HTTP_201_CREATED if created else http.HTTP_200_OK)


class DeviceDetail(APIView):
    required_scopes = {"DELETE": "users:write"}

    @extend_schema(responses={204: None})
    def delete(self, request, user_id, token):
        """Forget a push token."""
        recipient = get_object_or_404(Recipient, external_id=user_id)
        deleted, _ = Device.objects.filter(recipient=recipient, token=token).delete()
        if not deleted:
            raise ApiError(404, "not_found", "This user has no device with that token.", "token")
        return Response(status=http.HTTP_204_NO_CONTENT)


IF_MATCH = OpenApiParameter(
    "If-Match", str, OpenApiParameter.HEADER, required=False,
    description="The ETag from GET (required unless the body has `version`); `*` overwrites whatever is stored.",
)
ETAG_HEADER = OpenApiParameter(
    "ETag", str, OpenApiParameter.HEADER, response=[200, 412], required=True,
    description="The preferences' version, for If-Match.",
)
PREFERENCES_UPDATE = {
    200: PreferencesView,
    412: error("The preferences changed since the version named; GET them again (`current_version` says which)."),
    428: error("Neither If-Match nor `version` names the version the change applies to."),
}


class PreferencesDetail(APIView):
    required_scopes = {"GET": "users:read", "PUT": "users:write", "PATCH": "users:write"}

    @extend_schema(responses=PreferencesView, parameters=[ETAG_HEADER])
    def get(self, request, user_id):
        """The user's effective preferences, with the `version` (also the ETag) that an update must name."""
        recipient = get_object_or_404(Recipient, external_id=user_id)
        return preferences_response(recipient)

    @extend_schema(request=PreferencesRequest, responses=PREFERENCES_UPDATE, parameters=[IF_MATCH, ETAG_HEADER])
    def put(self, request, user_id):
        """Replace the user's preferences; anything left out returns to its default. 412 on a stale version."""
        return self.update(request, user_id, replace=True)

    @extend_schema(request=PreferencesRequest, responses=PREFERENCES_UPDATE, parameters=[IF_MATCH, ETAG_HEADER])
    def patch(self, request, user_id):
        """Change only the preferences named in the body. 412 on a stale version."""
        return self.update(request, user_id, replace=False)

    def update(self, request, user_id, *, replace: bool):
        recipient = get_object_or_404(Recipient, external_id=user_id)
        serializer = PreferencesRequest(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        expected = expected_version(request.headers.get("If-Match"), data.get("version"))
        editing.check_required_categories(data, store.category_policies())
        try:
            row = store.update_choices(recipient, expected, lambda row: editing.apply(row, recipient, data, replace=replace))
        except store.StaleVersion as stale:
            body = error_body(
                "version_mismatch",
                f"The preferences changed (now version {stale.current}); GET them again and reapply your change.",
                "If-Match", current_version=stale.current,
            )
            return Response(body, status=http.HTTP_412_PRECONDITION_FAILED, headers={"ETag": etag(stale.current)})
        return preferences_response(recipient, Choices.from_row(row))


def etag(version: int) -> str:
    return f'"{version}"'


ETAG = re.compile(r'^(?:W/)?"(\d{1,9})"$|^(\d{1,9})$')
ANY = object()


def expected_version(if_match: str | None, body_version: int | None) -> int | None:
    """The version an update is conditional on (None for `If-Match: *`); 428 if the client named none."""
    header_version = None
    if if_match is not None:
        value = if_match.strip()
        if value == "*":
            header_version = ANY
        else:
            match = ETAG.match(value)
            if not match:
                raise ApiError(400, "invalid", 'If-Match must be an ETag from GET, such as "3", or *.', "If-Match")
            header_version = int(match.group(1) or match.group(2))
    if header_version is None and body_version is None:
        raise ApiError(
            428, "precondition_required",
            "Send If-Match with the ETag from GET (or a version field) so concurrent edits cannot overwrite each other.",
            "If-Match",
        )
    if header_version is not None and body_version is not None and header_version not in (ANY, body_version):
        raise ApiError(400, "invalid", "The If-Match header and the version field disagree.", "version")
    if header_version is ANY:
        return None
    return header_version if header_version is not None else body_version


def preferences_response(recipient: Recipient, choices: Choices | None = None) -> Response:
    choices = choices or store.choices_for(recipient.pk)
    document = editing.effective_document(recipient, choices, store.category_policies())
    return Response(document, headers={"ETag": etag(choices.version)})


def unsubscribe_page(request, template: str, status: int = 200, **context):
    response = render(request, f"preferences/{template}", context, status=status)
    response["Cache-Control"] = "no-store"
    response["X-Robots-Tag"] = "noindex"
    return response


@csrf_exempt  # RFC 8058: mail providers POST "List-Unsubscribe=One-Click" with no session or CSRF token.
@require_http_methods(["GET", "POST"])
def unsubscribe_view(request, token):
    """GET shows a confirmation page (link scanners fetch it, so it changes nothing); POST unsubscribes."""
    try:
        recipient_id, category = unsubscribe.read_token(token)
    except signing.BadSignature:
        return unsubscribe_page(request, "unsubscribe_invalid.html", status=400)
    recipient = Recipient.objects.filter(pk=recipient_id).first()
    policy = store.category_policy(category)
    if recipient is None or policy.required:
        return unsubscribe_page(request, "unsubscribe_invalid.html", status=400)
    context = {"category": category, "email": privacy.masked_email(recipient.email)}
    if request.method == "GET":
        return unsubscribe_page(request, "unsubscribe_confirm.html", **context)
    unsubscribe.unsubscribe(recipient, category)
    return unsubscribe_page(request, "unsubscribe_done.html", **context)

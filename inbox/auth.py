"""Inbox token authentication for the inbox REST API (never an API key)."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions, permissions

from core.auth import BearerAuthentication
from core.errors import ApiError
from inbox.tokens import InboxToken, TokenError, read_token
from preferences.models import Recipient


class InboxUser:
    """The end user a token was minted for, as DRF's request.user."""

    is_authenticated = True
    is_anonymous = False

    def __init__(self, token: InboxToken):
        self.token = token
        self.recipient_id = token.recipient_id

    def __str__(self) -> str:
        return self.token.user_id


def recipient_for(token: InboxToken) -> bool:
    # The user id must still name the same recipient: a deleted and recreated user gets new tokens.
    return Recipient.objects.filter(pk=token.recipient_id, external_id=token.user_id).exists()


class InboxTokenAuthentication(BearerAuthentication):
    credential_name = "inbox token"
    realm = "herald-inbox"

    def authenticate_credential(self, request, credential: str):
        try:
            token = read_token(credential)
        except TokenError as exc:
            raise ApiError(401, exc.code, str(exc)) from None
        if not recipient_for(token):
            raise ApiError(401, "invalid_token", "The inbox token's user no longer exists.")
        return InboxUser(token), token


class HasInboxToken(permissions.BasePermission):
    def has_permission(self, request, view):
        if not isinstance(request.auth, InboxToken):
            raise exceptions.NotAuthenticated("Missing inbox token: send 'Authorization: Bearer <inbox token>'.")
        return True


class InboxTokenScheme(OpenApiAuthenticationExtension):
    target_class = "inbox.auth.InboxTokenAuthentication"
    name = "inboxToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http", "scheme": "bearer",
            "description": "An inbox token from POST /api/v1/users/{user_id}/inbox-token (never an API key).",
        }

"""The inbox REST API (inbox token auth) and the token endpoint for backend services (API key auth)."""

from datetime import UTC, datetime
from urllib.parse import quote

from django.conf import settings
from django.http import HttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework import status as http
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from core.errors import ApiError
from inbox import items
from inbox.auth import HasInboxToken, InboxTokenAuthentication
from inbox.serializers import (
    Counts,
    GroupListQuery,
    GroupView,
    InboxTokenRequest,
    InboxTokenView,
    ItemListQuery,
    ItemView,
    MarkAllReadRequest,
    MarkAllResult,
)
from inbox.tokens import issue_token
from notifications.models import BatchItem, Notification
from preferences.models import Recipient

# Inbox tokens travel in a header, never in cookies, so any site may call these endpoints:
# a page without the token can do nothing with them. That is what lets the widget live on
# the customer's own domain.
CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, POST, DELETE, OPTIONS",
    "Access-Control-Allow-Headers": "Authorization, Content-Type",
    "Access-Control-Max-Age": "600",
}


class InboxView(APIView):
    """Base of the end-user endpoints: inbox token auth, open to any origin."""

    authentication_classes = [InboxTokenAuthentication]
    permission_classes = [HasInboxToken]

    def dispatch(self, request, *args, **kwargs):
        if request.method == "OPTIONS":
            response = HttpResponse(status=204)
        else:
            response = super().dispatch(request, *args, **kwargs)
        for name, value in CORS_HEADERS.items():
            response[name] = value
        if response.status_code == 401:
            response["WWW-Authenticate"] = 'Bearer realm="herald-inbox"'
        return response

    @property
    def recipient_id(self) -> int:
        return self.request.auth.recipient_id


def parse_item_id(raw: str) -> int:
    if not (raw.isascii() and raw.isdecimal()) or len(raw) > 18:
        raise not_found(raw)
    return int(raw)


def not_found(item_id) -> ApiError:
    return ApiError(404, "not_found", f"No inbox item {item_id}.", "item_id")


def query(serializer_class, request) -> dict:
    serializer = serializer_class(data=request.query_params.dict())
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


class NewestItemsFirst(CursorPagination):
    ordering = "-id"
    page_size = 20
    page_size_query_param = "limit"
    max_page_size = 100


class NewestGroupsFirst(NewestItemsFirst):
    ordering = "-latest_id"


class ItemList(InboxView):
    pagination_class = NewestItemsFirst

    @extend_schema(
        responses=ItemView(many=True),
        parameters=[
            OpenApiParameter("state", str, enum=list(items.STATES)), OpenApiParameter("category", str),
            OpenApiParameter("group_key", str),
        ],
    )
    def get(self, request):
        """The inbox, newest first. `state` defaults to everything not archived."""
        params = query(ItemListQuery, request)
        rows = items.items_query(
            self.recipient_id, state=params["state"], category=params.get("category"), group_key=params.get("group_key")
        )
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(rows, request, view=self)
        return paginator.get_paginated_response([items.item_data(item) for item in page])


class GroupList(InboxView):
    pagination_class = NewestGroupsFirst

    @extend_schema(
        responses=GroupView(many=True),
        parameters=[
            OpenApiParameter("by", str, enum=list(items.GROUP_BY)), OpenApiParameter("state", str, enum=list(items.STATES)),
            OpenApiParameter("category", str),
        ],
    )
    def get(self, request):
        """The inbox grouped by group key or category, with unread counts, most recent activity first."""
        params = query(GroupListQuery, request)
        rows = items.groups_query(self.recipient_id, by=params["by"], state=params["state"], category=params.get("category"))
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(rows, request, view=self)
        latest = items.InboxItem.objects.in_bulk([row["latest_id"] for row in page])
        return paginator.get_paginated_response([
            {"key": row["group"], "count": row["count"], "unread_count": row["unread_count"],
             "latest": items.item_data(latest[row["latest_id"]])}
            for row in page
            if row["latest_id"] in latest  # deleted between the two queries
        ])


class UnreadCount(InboxView):
    @extend_schema(responses=Counts)
    def get(self, request):
        """How many inbox items are unread and unseen."""
        return Response(items.counts(self.recipient_id))


class ItemDetail(InboxView):
    @extend_schema(responses=ItemView)
    def get(self, request, item_id):
        """One inbox item."""
        try:
            return Response(items.item_data(items.get_item(self.recipient_id, parse_item_id(item_id))))
        except items.ItemNotFound:
            raise not_found(item_id) from None

    @extend_schema(responses={204: None})
    def delete(self, request, item_id):
        """Delete an inbox item for good."""
        try:
            items.delete(self.recipient_id, parse_item_id(item_id))
        except items.ItemNotFound:
            raise not_found(item_id) from None
        return Response(status=http.HTTP_204_NO_CONTENT)


class FirstItemsFirst(CursorPagination):
    ordering = ("added_at", "position")
    page_size = 50
    page_size_query_param = "limit"
    max_page_size = 200


BATCH_ITEM = inline_serializer("InboxBatchItem", many=True, fields={
    "position": serializers.IntegerField(), "template": serializers.CharField(),
    "variables": serializers.DictField(), "at": serializers.DateTimeField(),
})


class ItemBatch(InboxView):
    pagination_class = FirstItemsFirst

    @extend_schema(responses=BATCH_ITEM)
    def get(self, request, item_id):
        """Every item an inbox item gathered ("Ada and 999 others liked your post"), in the order they
        came, a page at a time; empty for an item that was not a batch or digest."""
        try:
            item = items.get_item(self.recipient_id, parse_item_id(item_id))
        except items.ItemNotFound:
            raise not_found(item_id) from None
        batch_id = Notification.objects.filter(pk=item.notification_id).values_list("batch_id", flat=True).first()
        rows = BatchItem.objects.filter(batch_id=batch_id).select_related("notification") if batch_id else BatchItem.objects.none()
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(rows, request, view=self)
        return paginator.get_paginated_response([
            {"position": row.position, "template": row.notification.template_name,
             "variables": row.notification.variables, "at": row.added_at}
            for row in page
        ])


ITEM_ACTIONS = {
    "read": items.mark_read,
    "unread": items.mark_unread,
    "seen": items.mark_seen,
    "archive": items.archive,
    "unarchive": items.unarchive,
}


class ItemAction(InboxView):
    action_name = ""

    @extend_schema(request=None, responses=ItemView)
    def post(self, request, item_id):
        """Change an item's state; answers with the item as it now is."""
        try:
            item = ITEM_ACTIONS[self.action_name](self.recipient_id, parse_item_id(item_id))
        except items.ItemNotFound:
            raise not_found(item_id) from None
        return Response(items.item_data(item))


class MarkAllRead(InboxView):
    @extend_schema(request=MarkAllReadRequest, responses=MarkAllResult)
    def post(self, request):
        """Mark every unread item read, or only those of one `category`."""
        serializer = MarkAllReadRequest(data=request.data if request.data else {})
        serializer.is_valid(raise_exception=True)
        updated = items.mark_all_read(self.recipient_id, serializer.validated_data.get("category"))
        return Response({"updated": updated, **counts_only(self.recipient_id)})


class MarkAllSeen(InboxView):
    @extend_schema(request=None, responses=MarkAllResult)
    def post(self, request):
        """Mark every unseen item seen, e.g. when the user opens the list."""
        updated = items.mark_all_seen(self.recipient_id)
        return Response({"updated": updated, **counts_only(self.recipient_id)})


def counts_only(recipient_id: int) -> dict:
    totals = items.counts(recipient_id)
    return {"unread_count": totals["unread_count"], "version": totals["version"]}


class InboxTokenCreate(APIView):
    required_scopes = {"POST": "users:write"}

    @extend_schema(request=InboxTokenRequest, responses=InboxTokenView)
    def post(self, request, user_id):
        """Mint a short-lived token that lets a browser read and change this user's inbox only."""
        recipient = Recipient.objects.filter(external_id=user_id).first()
        if recipient is None:
            raise ApiError(404, "unknown_user", f"No user {user_id!r}; create it with PUT /api/v1/users/{{user_id}}.", "user_id")
        serializer = InboxTokenRequest(data=request.data if request.data else {})
        serializer.is_valid(raise_exception=True)
        raw, token = issue_token(recipient.pk, recipient.external_id, serializer.validated_data.get("ttl_seconds"))
        return Response(token_response(raw, token))


def websocket_base_url() -> str:
    """Where browsers open the inbox socket: the public origin, unless HERALD_INBOX_SOCKET_URL says otherwise."""
    base = (settings.HERALD_INBOX_SOCKET_URL or settings.PUBLIC_BASE_URL).rstrip("/")
    return base.replace("https://", "wss://", 1).replace("http://", "ws://", 1)


def token_response(raw: str, token) -> dict:
    websocket_base = websocket_base_url()
    return {
        "token": raw,
        "user_id": token.user_id,
        "expires_at": datetime.fromtimestamp(token.expires_at, UTC).isoformat().replace("+00:00", "Z"),
        "websocket_url": f"{websocket_base}/ws/inbox?token={quote(raw)}",
    }

"""The embeddable widget's script and the demo page.

The demo page mints inbox tokens for a fixed list of demo users (HERALD_INBOX_DEMO_USERS)
from its own server-side view, so no API key reaches the browser. Anyone who can load the
page can read those users' inboxes, hence it is off unless DEBUG or HERALD_INBOX_DEMO=1.
"""

from pathlib import Path

from django.conf import settings
from django.http import FileResponse, Http404, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET, require_POST

from core.errors import ApiError, error_body
from core.vocabulary import NotificationType
from inbox.tokens import issue_token
from inbox.views import token_response
from notifications.accept import accept_notification
from notifications.serializers import NotificationRequest
from preferences.models import Recipient
from templates_app.models import Template

WIDGET_PATH = Path(__file__).resolve().parent / "static" / "inbox" / "inbox.js"
DEMO_TEMPLATE = "inbox-demo"
DEMO_SCHEMA = {
    "type": "object",
    "required": ["title", "message"],
    "properties": {
        "title": {"type": "string", "minLength": 1, "maxLength": 200},
        "message": {"type": "string", "minLength": 1, "maxLength": 1000},
    },
}


@require_GET
def widget_script(request):
    """The dependency-free bell widget (inbox/static/inbox/inbox.js)."""
    response = FileResponse(WIDGET_PATH.open("rb"), content_type="application/javascript; charset=utf-8")
    response["Cache-Control"] = "public, max-age=300"
    response["Access-Control-Allow-Origin"] = "*"
    return response


def demo_enabled() -> None:
    if not settings.HERALD_INBOX_DEMO:
        raise Http404("The inbox demo is off; set HERALD_INBOX_DEMO=1 (or DEBUG) to turn it on.")


def demo_recipient(user_id: str) -> Recipient:
    if user_id not in settings.HERALD_INBOX_DEMO_USERS:
        raise Http404("Not a demo user.")
    recipient, _ = Recipient.objects.get_or_create(external_id=user_id)
    return recipient


@require_GET
def demo_page(request):
    """Pick a demo user, watch their bell, and send them notifications."""
    demo_enabled()
    users = settings.HERALD_INBOX_DEMO_USERS
    user_id = request.GET.get("user") or users[0]
    demo_recipient(user_id)
    Template.objects.get_or_create(
        name=DEMO_TEMPLATE, channel="in_app", locale="en",
        defaults={"title": "{{ title }}", "body": "{{ message }}", "variables_schema": DEMO_SCHEMA},
    )
    return render(request, "inbox/demo.html", {
        "users": users, "user_id": user_id,
        "base_url": settings.PUBLIC_BASE_URL, "socket_url": settings.HERALD_INBOX_SOCKET_URL,
    })


@require_GET
def demo_token(request):
    """An inbox token for a demo user: what a real site's backend would do with its API key."""
    demo_enabled()
    recipient = demo_recipient(request.GET.get("user", ""))
    raw, token = issue_token(recipient.pk, recipient.external_id)
    response = JsonResponse(token_response(raw, token))
    response["Cache-Control"] = "no-store"
    return response


# What a demo send is, whatever the request says: an ordinary in-app message to a demo user.
# The page is unauthenticated, so nothing that changes who is reached, how urgently or where a
# click leads (category, priority, channels, action_url) comes from the request.
DEMO_SEND_TYPE = NotificationType.TRANSACTION.value


@require_POST
def demo_send(request):
    """Send a demo user an in-app notification (title and message only) through the normal accept path."""
    demo_enabled()
    user_id = request.POST.get("user", "")
    demo_recipient(user_id)
    payload = {
        "user_id": user_id,
        "type": DEMO_SEND_TYPE,
        "template": DEMO_TEMPLATE,
        "channels": ["in_app"],
        "variables": {"title": request.POST.get("title", ""), "message": request.POST.get("message", "")},
    }
    serializer = NotificationRequest(data=payload)
    if not serializer.is_valid():
        field, errors = next(iter(serializer.errors.items()))
        return JsonResponse(error_body("invalid", f"{field}: {errors[0]}", field), status=400)
    try:
        accepted = accept_notification(serializer.validated_data, raw_payload=payload, api_key=None, idempotency_key=None)
    except ApiError as exc:
        return JsonResponse(error_body(exc.code, str(exc.detail), exc.field), status=exc.status_code)
    return JsonResponse({"id": str(accepted.notification.pk), "status": accepted.notification.status}, status=202)

"""What `make run` runs after migrating: an admin user, a demo API key, a demo user and templates."""

import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from notifications.models import ApiKey, hash_api_key
from preferences.models import Device, Recipient
from templates_app import versions
from templates_app.models import MessageTemplate, Template

DEMO_TEMPLATES = [
    {"channel": "email", "subject": "Welcome, {{ name }}!", "body": "Hi {{ name }}, welcome to Herald.",
     "html_body": "<p>Hi <b>{{ name }}</b>, welcome to Herald.</p>"},
    {"channel": "sms", "body": "Hi {{ name }}, welcome to Herald."},
    {"channel": "push", "title": "Welcome", "body": "Hi {{ name }}, welcome to Herald."},
    {"channel": "in_app", "title": "Welcome", "body": "Hi {{ name }}, welcome to Herald."},
]
SCHEMA = {"type": "object", "required": ["name"], "properties": {"name": {"type": "string", "examples": ["Ada"]}}}


def local_secret(filename: str, make) -> tuple[str, bool]:
    """A development secret kept under var/ (never committed), created on first use."""
    path = settings.VAR_DIR / filename
    if path.exists():
        return path.read_text().strip(), False
    path.parent.mkdir(parents=True, exist_ok=True)
    value = make()
    path.write_text(value)
    path.chmod(0o600)
    return value, True


class Command(BaseCommand):
    help = "Ensure the admin user, demo API key, demo user and demo templates exist; print how to use them."

    def handle(self, *args, **options):
        password, _ = local_secret("admin_password", lambda: secrets.token_urlsafe(12))
        User = get_user_model()
        admin, created = User.objects.get_or_create(username="admin", defaults={"is_staff": True, "is_superuser": True})
        if created:
            admin.set_password(password)
            admin.save()

        raw_key, _ = local_secret("demo_api_key", lambda: "")
        if not raw_key or not ApiKey.objects.filter(key_hash=hash_api_key(raw_key), revoked_at__isnull=True).exists():
            _, raw_key = ApiKey.issue("demo")
            (settings.VAR_DIR / "demo_api_key").write_text(raw_key)

        recipient, _ = Recipient.objects.get_or_create(
            external_id="demo-user", defaults={"email": "demo@example.com", "phone": "+14155550100"}
        )
        Device.objects.get_or_create(token="demo-device-token", defaults={"recipient": recipient, "platform": "android"})
        if not MessageTemplate.objects.filter(name="welcome").exists() and not Template.objects.filter(name="welcome").exists():
            # Version 1 of the demo template, so that admin shows its history, preview and diff from the start.
            draft = versions.create_draft("welcome", contents=[{"locale": "en", **variant} for variant in DEMO_TEMPLATES],
                                          variables_schema=SCHEMA, category="transaction", note="The demo's template.")
            versions.publish("welcome", draft.number)

        base = settings.PUBLIC_BASE_URL
        self.stdout.write(f"""
Herald is starting on {base}
  Admin:     {base}/admin/  (user: admin, password: {password if created else 'see var/admin_password'})
  API docs:  {base}/api/docs/
  Inbox:     {base}/inbox/demo/  (a live in-app inbox; send from the page or the API)
  Demo API key (kept in var/demo_api_key): {raw_key}

Send a notification to the demo user:

  curl -s -X POST {base}/api/v1/notifications \\
    -H "Authorization: Bearer {raw_key}" -H "Content-Type: application/json" \\
    -d '{{"user_id": "demo-user", "type": "transaction", "template": "welcome", "variables": {{"name": "Ada"}}}}'

Then follow it (use the id from the answer):

  curl -s {base}/api/v1/notifications/<id> -H "Authorization: Bearer {raw_key}"
""")

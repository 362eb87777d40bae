"""First start of an installation: migrations, the admin user, optionally a first API key. Safe to run on every start.

    python manage.py bootstrap

- migrates the database;
- creates the superuser HERALD_ADMIN_USERNAME with the password in the file
  HERALD_ADMIN_PASSWORD_FILE (a compose or Kubernetes secret), unless that user exists: an
  existing user's password is never changed here (change it in admin);
- with HERALD_BOOTSTRAP_API_KEY_NAME set and no key of that name yet, issues one with every
  scope and prints it once, as the last line of output (only its hash is stored).
"""

from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from notifications.models import ApiKey


class Command(BaseCommand):
    help = "Migrate, create the admin user from a secret file, and issue a first API key (printed once). Idempotent."

    def handle(self, *args, **options):
        call_command("migrate", interactive=False, verbosity=options["verbosity"])
        self.ensure_admin()
        self.ensure_first_api_key()

    def ensure_admin(self) -> None:
        username, password_file = settings.HERALD_ADMIN_USERNAME, settings.HERALD_ADMIN_PASSWORD_FILE
        users = get_user_model()
        if users.objects.filter(username=username).exists():
            self.stderr.write(f"admin user {username!r} exists; left as it is")
            return
        if not password_file:
            self.stderr.write("no admin user created: set HERALD_ADMIN_PASSWORD_FILE to a file holding the password")
            return
        try:
            password = Path(password_file).read_text().strip()
        except OSError as exc:
            raise CommandError(f"cannot read HERALD_ADMIN_PASSWORD_FILE: {exc}") from None
        if not password:  # compose's secret from an unset HERALD_ADMIN_PASSWORD
            self.stderr.write("no admin user created: the admin password secret is empty (set HERALD_ADMIN_PASSWORD)")
            return
        if len(password) < 12:
            raise CommandError("the admin password must be at least 12 characters")
        users.objects.create_superuser(username=username, email=settings.HERALD_ADMIN_EMAIL, password=password)
        self.stderr.write(f"created admin user {username!r}")

    def ensure_first_api_key(self) -> None:
        name = settings.HERALD_BOOTSTRAP_API_KEY_NAME
        if not name:
            return
        if ApiKey.objects.filter(name=name).exists():
            self.stderr.write(f"API key {name!r} exists; it was printed when it was created")
            return
        key, raw_key = ApiKey.issue(name)
        self.stderr.write(f"created API key {key.prefix}… named {name!r} with every scope; it is printed once, below:")
        self.stdout.write(raw_key)

from django.core.management.base import BaseCommand, CommandError

from notifications.models import SCOPES, ApiKey


class Command(BaseCommand):
    help = "Issue an API key. The key is printed once, as the last line of output; only its hash is stored."

    def add_arguments(self, parser):
        parser.add_argument("--name", required=True)
        parser.add_argument("--scopes", nargs="+", default=list(SCOPES), metavar="SCOPE", help=f"default: all of {' '.join(SCOPES)}")

    def handle(self, *args, name, scopes, **options):
        unknown = sorted(set(scopes) - set(SCOPES))
        if unknown:
            raise CommandError(f"unknown scope(s) {', '.join(unknown)}; choose from {' '.join(SCOPES)}")
        key, raw_key = ApiKey.issue(name, scopes)
        self.stderr.write(f"Created API key {key.prefix}… named {name!r} with scopes: {' '.join(key.scopes)}")
        self.stdout.write(raw_key)

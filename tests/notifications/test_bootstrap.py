"""`manage.py bootstrap`: the admin user from a secret file and a first API key, once, however often it runs."""

from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from notifications.models import ApiKey, hash_api_key

pytestmark = pytest.mark.django_db


def bootstrap() -> str:
    out = StringIO()
    call_command("bootstrap", stdout=out, stderr=StringIO(), verbosity=0)
    return out.getvalue()


@pytest.fixture
def secret(tmp_path, settings):
    path = tmp_path / "admin_password"
    path.write_text("a-long-enough-password\n")
    settings.HERALD_ADMIN_USERNAME, settings.HERALD_ADMIN_PASSWORD_FILE = "ops", str(path)
    settings.HERALD_BOOTSTRAP_API_KEY_NAME = "backend"
    return path


def test_a_first_run_creates_the_admin_from_the_secret_and_prints_a_first_key_once(secret):
    printed = bootstrap()

    admin = get_user_model().objects.get(username="ops")
    assert admin.is_superuser and admin.check_password("a-long-enough-password")
    raw_key = printed.strip().splitlines()[-1]
    assert ApiKey.objects.get(name="backend").key_hash == hash_api_key(raw_key)


def test_a_second_run_changes_nothing_and_prints_no_key(secret):
    bootstrap()
    secret.write_text("another-long-password")

    printed = bootstrap()

    assert printed == ""
    assert ApiKey.objects.filter(name="backend").count() == 1
    assert get_user_model().objects.get(username="ops").check_password("a-long-enough-password")


def test_without_a_secret_no_admin_is_created_and_a_short_password_is_refused(settings, tmp_path):
    settings.HERALD_ADMIN_PASSWORD_FILE, settings.HERALD_BOOTSTRAP_API_KEY_NAME = "", ""
    assert bootstrap() == ""
    assert not get_user_model().objects.exists()

    empty = tmp_path / "empty"
    empty.write_text("\n")
    settings.HERALD_ADMIN_PASSWORD_FILE = str(empty)
    assert bootstrap() == ""
    assert not get_user_model().objects.exists()

    short = tmp_path / "short"
    short.write_text("short")
    settings.HERALD_ADMIN_PASSWORD_FILE = str(short)
    with pytest.raises(CommandError, match="at least 12"):
        bootstrap()

"""The admin login's failure limit: per (username, address), and never against a browser that signed in before."""

import pytest
from django.test import Client, override_settings

from config.middleware import ADMIN_DEVICE_COOKIE

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("ops")]

NAT = "198.51.100.7"
PASSWORD = "right-password-123"


@pytest.fixture
def ops(django_user_model):
    django_user_model.objects.create_superuser("ops", "ops@example.com", PASSWORD)
    django_user_model.objects.create_superuser("dev", "dev@example.com", PASSWORD)


def log_in(client: Client, username: str, password: str, address: str = NAT):
    return client.post("/admin/login/", {"username": username, "password": password}, REMOTE_ADDR=address)


def signed_in_browser() -> Client:
    browser = Client()
    assert log_in(browser, "ops", PASSWORD).status_code == 302
    device = browser.cookies[ADMIN_DEVICE_COOKIE].value
    assert device
    browser.logout()  # which drops every cookie; the browser keeps its device cookie
    browser.cookies[ADMIN_DEVICE_COOKIE] = device
    return browser


@override_settings(HERALD_AUTH_FAILURE_LIMIT=5)
def test_wrong_passwords_lock_out_that_username_at_that_address_with_retry_after():
    stranger = Client()
    answers = [log_in(stranger, "ops", f"wrong-{i}").status_code for i in range(6)]
    blocked = log_in(Client(), "ops", PASSWORD)

    assert answers == [200] * 5 + [429]  # the form again, with an error, then refused
    assert blocked.status_code == 429 and int(blocked["Retry-After"]) > 0


@override_settings(HERALD_AUTH_FAILURE_LIMIT=5)
def test_the_lockout_spares_other_usernames_and_other_addresses():
    for i in range(6):
        log_in(Client(), "ops", f"wrong-{i}")

    assert log_in(Client(), "dev", PASSWORD).status_code == 302
    assert log_in(Client(), "ops", PASSWORD, address="203.0.113.9").status_code == 302


@override_settings(HERALD_AUTH_FAILURE_LIMIT=5)
def test_a_browser_that_signed_in_before_is_never_locked_out_by_strangers_failures():
    # given the real user's browser, signed in once before
    browser = signed_in_browser()

    # when a stranger behind the same NAT fails for the same username until locked out
    answers = [log_in(Client(), "ops", f"wrong-{i}").status_code for i in range(8)]
    assert answers[-1] == 429

    # then the real user still signs in from that browser and that address
    assert log_in(browser, "ops", PASSWORD).status_code == 302


@override_settings(HERALD_AUTH_FAILURE_LIMIT=3)
def test_a_signed_in_before_browser_is_limited_on_its_own_failures():
    browser = signed_in_browser()

    answers = [log_in(browser, "ops", f"wrong-{i}").status_code for i in range(4)]

    assert answers == [200, 200, 200, 429]
    assert log_in(Client(), "ops", PASSWORD).status_code == 302  # others are not charged with its failures


@override_settings(HERALD_AUTH_FAILURE_LIMIT=3)
def test_a_device_cookie_only_vouches_for_the_user_it_was_issued_to():
    # given a browser trusted for "ops", and "dev" locked out at this address
    browser = signed_in_browser()
    for i in range(3):
        log_in(Client(), "dev", f"wrong-{i}")

    # when that browser tries "dev", or a forged cookie is sent
    as_dev = log_in(browser, "dev", PASSWORD)
    forged = Client()
    forged.cookies[ADMIN_DEVICE_COOKIE] = browser.cookies[ADMIN_DEVICE_COOKIE].value[:-2] + "xx"
    for i in range(3):
        log_in(forged, "ops", f"wrong-{i}")
    forged_answer = log_in(forged, "ops", PASSWORD)

    # then neither is trusted
    assert as_dev.status_code == 429
    assert forged_answer.status_code == 429


@override_settings(HERALD_AUTH_FAILURE_LIMIT=3)
def test_a_successful_login_clears_its_own_count():
    client = Client()
    log_in(client, "ops", "wrong-1")
    log_in(client, "ops", "wrong-2")
    assert log_in(client, "ops", PASSWORD).status_code == 302
    client.logout()  # and its device cookie with it

    answers = [log_in(client, "ops", f"wrong-{i}").status_code for i in range(3)]

    assert answers == [200, 200, 200]

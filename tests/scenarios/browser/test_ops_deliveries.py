"""An ops user follows a failed email in Django admin, in headless Chromium (Playwright): the notification,
its deliveries, the email's attempts, its dead letter, and a requeue from the dead letter's page."""

import shutil

import pytest
from django.contrib.admin.models import LogEntry

from delivery.models import Delivery
from tests.factories import make_failed_delivery, make_recipient

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
PASSWORD = "a-long-ops-password"

pytestmark = pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason="needs Debian's chromium (apt-get install chromium)")


def test_ops_walk_from_a_notification_to_its_dead_letter_and_requeue_it(live_server, no_worker, django_user_model, tmp_path):
    # no_worker: the requeued email must still be waiting when the page is read, not already sent by a worker.
    from playwright.sync_api import expect, sync_playwright

    # given ada's notification: push sent, SMS skipped (no phone), email failed four times and dead-lettered
    ops = django_user_model.objects.create_superuser("ops", "ops@example.com", PASSWORD)
    notification, email, letter = make_failed_delivery(make_recipient("ada", phone=""))
    make_failed_delivery(make_recipient("bob", phone=""))  # someone else's, which the search must leave out
    admin = f"{live_server.url}/admin"
    shots = []

    def screenshot(page, name: str) -> None:
        path = tmp_path / f"{len(shots) + 1}-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        shots.append(path)

    # Django refuses database calls while Playwright's event loop runs: inside the block, HTTP only.
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(f"{admin}/login/")
            page.fill("#id_username", "ops")
            page.fill("#id_password", PASSWORD)
            page.click("input[type=submit]")
            expect(page.locator("#site-name")).to_have_text("Herald")

            # when they look ada up among the notifications
            page.goto(f"{admin}/notifications/notification/")
            page.fill("#searchbar", "ada")
            page.press("#searchbar", "Enter")
            rows = page.locator("#result_list tbody tr")
            expect(rows).to_have_count(1)
            expect(rows.first.locator("td.field-user_id")).to_have_text("ada")
            expect(rows.first.locator(".short-id")).to_have_attribute("title", str(notification.pk))
            expect(rows.first.locator(".short-id")).to_have_text(str(notification.pk)[:8])
            screenshot(page, "notifications")

            # then the notification shows its deliveries, status history, skipped channels and workflow as tables
            rows.first.locator("th a").click()
            expect(page.locator(".breadcrumbs")).to_contain_text("Notifications › Notifications › transaction notification")
            expect(page.locator("#section-status-history tbody tr")).to_have_count(4)
            expect(page.locator("#section-status-history tbody tr").last).to_contain_text("sent")
            expect(page.locator("#section-skipped-channels tbody tr td")).to_have_text(["sms", "no_phone", "—"])
            expect(page.locator("#section-workflow tbody tr").nth(1)).to_contain_text("not_read")
            expect(page.locator("#section-deliveries tbody tr")).to_have_count(2)
            expect(page.locator("div.field-user_id")).to_contain_text("ada")
            expect(page.locator("input[name=_save]")).to_have_count(0)
            screenshot(page, "notification")

            # and its deliveries, in the list
            page.click("#deliveries-in-list")
            deliveries = page.locator("#result_list tbody tr")
            expect(deliveries).to_have_count(2)
            expect(deliveries.filter(has_text="email")).to_contain_text("http_503")
            screenshot(page, "deliveries")

            # then the email: four attempts, each a 503, and its dead letter
            deliveries.filter(has_text="email").locator("th a").click()
            attempts = page.locator("#section-attempts tbody tr")
            expect(attempts).to_have_count(4)
            expect(attempts.first).to_contain_text("http_503")
            expect(page.locator("#section-dead-letters")).to_contain_text("max_attempts_exceeded")
            screenshot(page, "delivery")

            page.click("#all-attempts")
            expect(page.locator("#result_list tbody tr")).to_have_count(4)
            expect(page.locator("#result_list tbody tr").first).to_contain_text("Retry")
            screenshot(page, "attempts")
            page.go_back()

            # and its dead letter, requeued from its page
            page.locator("#section-dead-letters a.short-id").click()
            expect(page.locator("div.field-reason")).to_contain_text("max_attempts_exceeded")
            expect(page.locator("div.field-user_id")).to_contain_text("ada")
            expect(page.locator("div.field-delivery_status")).to_contain_text("failed, 4 attempt(s)")
            expect(page.locator("#requeue-form button")).to_have_text("Requeue")
            screenshot(page, "dead-letter")
            page.click("#requeue-form button")
            expect(page.locator(".messagelist")).to_contain_text("Requeued")
            expect(page.locator("div.field-requeued_by")).to_contain_text("ops at ")
            expect(page.locator("div.field-delivery_status")).to_contain_text("queued, 0 attempt(s)")
            expect(page.locator("#requeue-form")).to_have_count(0)
            screenshot(page, "requeued")
        finally:
            browser.close()

    # then the email waits for a fresh set of attempts, and the requeue is on record as ops's
    email = Delivery.objects.get(pk=email.pk)
    assert (email.status, email.attempts, email.status_history[-1].get("reason")) == ("queued", 0, "requeued")
    assert LogEntry.objects.filter(user=ops, object_id=str(letter.pk), change_message="Requeued").count() == 1
    assert [path.name for path in shots] == ["1-notifications.png", "2-notification.png", "3-deliveries.png", "4-delivery.png",
                                             "5-attempts.png", "6-dead-letter.png", "7-requeued.png"]
    assert all(path.stat().st_size > 10_000 for path in shots)

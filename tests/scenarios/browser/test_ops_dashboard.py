"""The ops dashboard after a mixed run, in headless Chromium: charts, lanes, breakers, dead letters and their requeue."""

import os
import shutil
from pathlib import Path

import pytest

from notifications.models import Notification
from tests.factories import make_recipient, make_templates, notification_body
from tests.services import wait_for

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]

pytestmark = pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason="needs Debian's chromium (apt-get install chromium)")


def test_ops_see_sends_failures_latency_lanes_breakers_and_dead_letters_they_can_requeue(live, live_server, api, django_user_model,
                                                                                       tmp_path):
    from playwright.sync_api import expect, sync_playwright

    # given a mixed run: sends on three channels at two priorities, and two failures
    django_user_model.objects.create_superuser("ops", "ops@example.com", "a-long-ops-password")
    make_templates()
    make_recipient("u1")
    bodies = [notification_body(channels=[channel], variables={"name": f"{channel}{n}"}) for channel in ("email", "sms", "push")
              for n in range(3)]
    bodies += [notification_body(channels=["email"], priority="low", variables={"name": f"m{n}"}) for n in range(3)]
    bodies += [notification_body(channels=["sms"], variables={"name": f"x{n}"}, metadata={"sandbox": {"fail": "failed"}})
               for n in range(2)]
    ids = [api.post("/api/v1/notifications", body, format="json").json()["id"] for body in bodies]
    wait_for(lambda: Notification.objects.filter(pk__in=ids, status__in=["sent", "failed"]).count() == len(ids), 60,
             message="the mixed run to finish")
    admin = f"{live_server.url}/admin"
    shot = Path(os.environ.get("HERALD_SCREENSHOT_DIR", tmp_path)) / "ops_dashboard.png"

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1800})
            page.goto(f"{admin}/login/")
            page.fill("#id_username", "ops")
            page.fill("#id_password", "a-long-ops-password")
            page.click("input[type=submit]")

            # when
            page.goto(f"{admin}/ops/")

            # then
            expect(page.locator("#sent-chart svg polyline, #sent-chart svg circle")).to_have_count(3)
            expect(page.locator("#failed-chart svg title, #failed-chart svg circle")).not_to_have_count(0)
            expect(page.locator("#latency-chart svg")).to_contain_text("high")
            expect(page.locator("#latency-chart svg")).to_contain_text("low")
            expect(page.locator("#lanes tr[data-lane='sms.urgent']")).to_be_visible()
            expect(page.locator("#breakers tr[data-provider='sandbox']")).to_contain_text("closed")
            expect(page.locator("#dead-letter-count")).to_have_text("2")
            page.screenshot(path=str(shot), full_page=True)
            page.click("#requeue-link")
            expect(page.locator("#result_list tbody tr")).to_have_count(2)
        finally:
            browser.close()

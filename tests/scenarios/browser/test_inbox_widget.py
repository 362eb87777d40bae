"""The embeddable bell on the demo page, in headless Chromium (Debian's, driven by Playwright).

Runs against uvicorn serving config.asgi with a real Celery worker: a notification sent
through the API appears in the open page without a reload, and reading it in one tab
clears the badge in another.
"""

import shutil

import httpx
import pytest

from inbox.models import InboxItem
from tests.factories import make_templates, notification_body
from tests.inbox.support import asgi_server  # noqa: F401  (fixture)
from tests.services import wait_for

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
LIVE = 20_000  # ms a change may take to show: it goes through routing, the worker and the socket

pytestmark = pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason="needs Debian's chromium (apt-get install chromium)")


def test_a_sent_notification_appears_live_and_reading_it_clears_the_badge_in_every_tab(live, asgi_server, api_key):  # noqa: F811
    from playwright.sync_api import expect, sync_playwright

    # given the in-app template, and the demo page open for demo-ada in two tabs
    make_templates(channels=("in_app",))
    demo = f"{asgi_server.http_url}/inbox/demo/?user=demo-ada"
    # Django refuses database calls while Playwright's event loop runs, so all of them are
    # made before or after this block; inside it the test talks HTTP only.
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            context = browser.new_context()
            tabs = [context.new_page(), context.new_page()]
            for tab in tabs:
                tab.goto(demo)
                expect(tab.locator("#bell")).to_have_attribute("data-state", "connected", timeout=LIVE)
                expect(tab.locator("#bell .badge")).to_be_hidden()
                tab.evaluate("window.__notReloaded = true")
            first, second = tabs

            # when the backend sends demo-ada a notification through the API
            response = httpx.post(
                f"{asgi_server.http_url}/api/v1/notifications",
                headers={"Authorization": f"Bearer {api_key[1]}"},
                json=notification_body(user_id="demo-ada", channels=["in_app"], variables={"name": "Grace"}),
            )
            assert response.status_code == 202, response.text

            # then both tabs' badges count it, without a reload
            for tab in tabs:
                expect(tab.locator("#bell .badge")).to_have_text("1", timeout=LIVE)
            first.locator("#bell .bell").click()
            item = first.locator("#bell .item")
            expect(item).to_have_count(1)
            expect(item).to_contain_text("Hello Grace via in_app")
            expect(item).to_have_class("item unread")

            # when she clicks it in the first tab
            item.click()

            # then it is read there, and the second tab's badge drops too
            expect(item).to_have_class("item")
            expect(first.locator("#bell .badge")).to_be_hidden()
            expect(second.locator("#bell .badge")).to_be_hidden(timeout=LIVE)
            expect(second.locator("#bell")).to_have_attribute("data-unread", "0")
            assert all(tab.evaluate("window.__notReloaded") for tab in tabs)
        finally:
            browser.close()

    assert InboxItem.objects.get(recipient__external_id="demo-ada").read_at is not None


def test_the_bell_reconnects_after_a_drop_and_shows_what_arrived_meanwhile(live, asgi_server, api_key):  # noqa: F811
    from playwright.sync_api import expect, sync_playwright

    make_templates(channels=("in_app",))
    api = httpx.Client(base_url=asgi_server.http_url, headers={"Authorization": f"Bearer {api_key[1]}"}, timeout=10)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page()
            page.goto(f"{asgi_server.http_url}/inbox/demo/?user=demo-grace")
            bell = page.locator("#bell")
            expect(bell).to_have_attribute("data-state", "connected", timeout=LIVE)

            # given the connection drops, and stays down until we let the widget back in
            page.evaluate("""() => {
                const inbox = document.querySelector('#bell').__heraldInbox;
                const fetchToken = inbox.fetchToken.bind(inbox);
                window.__back = new Promise(resolve => { window.__letBack = resolve; });
                inbox.fetchToken = () => window.__back.then(fetchToken);
                inbox.ws.close();
            }""")
            expect(bell).to_have_attribute("data-state", "connecting", timeout=LIVE)

            # when two notifications are delivered meanwhile
            for name in ("first", "second"):
                response = api.post("/api/v1/notifications", json=notification_body(
                    user_id="demo-grace", channels=["in_app"], variables={"name": name}))
                assert response.status_code == 202, response.text
            token = httpx.get(f"{asgi_server.http_url}/inbox/demo/token", params={"user": "demo-grace"}).json()["token"]
            inbox_api = httpx.Client(base_url=asgi_server.http_url, headers={"Authorization": f"Bearer {token}"})
            wait_for(lambda: inbox_api.get("/api/v1/inbox/unread-count").json()["unread_count"] == 2, 30,
                     message="both items to be delivered")
            assert bell.get_attribute("data-unread") in (None, "0")

            # then once it is back, the badge and list show both, without a reload
            page.evaluate("window.__letBack()")
            expect(bell).to_have_attribute("data-state", "connected", timeout=LIVE)
            expect(page.locator("#bell .badge")).to_have_text("2", timeout=LIVE)
            page.locator("#bell .bell").click()
            expect(page.locator("#bell .item")).to_have_count(2)
            # (in delivery order, which two worker processes may swap)
            texts = sorted(page.locator("#bell .item .body").all_inner_texts())
            assert texts == ["Hello first via in_app", "Hello second via in_app"]
        finally:
            browser.close()

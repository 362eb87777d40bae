"""An ops user runs templates and an experiment in Django admin, in headless Chromium (Playwright)."""

import json
import shutil

import pytest

from experiments.models import Experiment
from templates_app import versions
from templates_app.models import MessageTemplate

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
SCHEMA = {"type": "object", "properties": {"name": {"type": "string", "examples": ["Ada"]}}}

pytestmark = pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason="needs Debian's chromium (apt-get install chromium)")


def test_ops_preview_two_locales_diff_publish_and_start_an_experiment(live_server, django_user_model):
    from playwright.sync_api import expect, sync_playwright

    # given a template with a published version 1 and a draft version 2, in English and German
    django_user_model.objects.create_superuser("ops", "ops@example.com", "a-long-ops-password")
    versions.create_draft("offer", variables_schema=SCHEMA, category="marketing", contents=[
        {"channel": "email", "locale": "en", "subject": "An offer for {{ name }}", "body": "Hello {{ name }}"},
        {"channel": "email", "locale": "de", "subject": "Ein Angebot für {{ name }}", "body": "Hallo {{ name }}"}])
    versions.publish("offer", 1)
    draft = versions.create_draft("offer", contents=[
        {"channel": "email", "locale": "en", "subject": "{{ name }}, this is for you", "body": "Hello {{ name }}"},
        {"channel": "email", "locale": "de", "subject": "{{ name }}, das ist für dich", "body": "Hallo {{ name }}"}])
    one = MessageTemplate.objects.get(name="offer").versions.get(number=1)
    admin = f"{live_server.url}/admin"
    # Django refuses database calls while Playwright's event loop runs: inside the block, HTTP only.
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page()
            page.goto(f"{admin}/login/")
            page.fill("#id_username", "ops")
            page.fill("#id_password", "a-long-ops-password")
            page.click("input[type=submit]")
            expect(page.locator("#site-name")).to_be_visible()

            # when they preview the draft in each locale
            page.goto(f"{admin}/templates_app/templateversion/{draft.pk}/preview/")
            page.select_option("select[name=only_locale]", "de")
            page.click("#preview-form input[type=submit]")
            expect(page.locator(".preview[data-locale=de] .subject")).to_have_text("Ada, das ist für dich")
            expect(page.locator(".preview[data-locale=en]")).to_have_count(0)
            page.select_option("select[name=only_locale]", "en")
            page.click("#preview-form input[type=submit]")
            expect(page.locator(".preview[data-locale=en] .subject")).to_have_text("Ada, this is for you")

            # and diff it against version 1, then publish it
            page.goto(f"{admin}/templates_app/templateversion/{draft.pk}/diff/?against=1")
            expect(page.locator("table.version-diff").first).to_be_visible()
            expect(page.locator("#content-main")).to_contain_text("email/de subject")
            page.goto(f"{admin}/templates_app/templateversion/{draft.pk}/change/")
            page.click("#publish-form input[type=submit]")
            expect(page.locator(".messagelist")).to_contain_text("v2 is current")

            # and create an experiment of version 1 against version 2, start it, and read its results
            page.goto(f"{admin}/experiments/experiment/add/")
            page.fill("#id_name", "Subject line")
            page.select_option("#id_template", label="offer")
            page.select_option("#id_channel", "email")
            page.fill("#id_arms", json.dumps([{"key": "A", "version": 1, "weight": 50}, {"key": "B", "version": 2, "weight": 50}]))
            page.click("input[name=_save]")
            expect(page.locator(".messagelist")).to_contain_text("was added successfully")
            page.click("td.field-results_link a")
            page.click("#experiment-actions button[value=start]")
            expect(page.locator("#experiment-status")).to_have_text("running")
            expect(page.locator("#results tbody tr")).to_have_count(2)
            expect(page.locator("#results tr[data-arm=B]")).to_contain_text("2")
        finally:
            browser.close()

    # then the version is current and the experiment runs
    assert MessageTemplate.objects.get(name="offer").current_version == 2
    assert Experiment.objects.get(name="Subject line").status == "running"
    assert one.published_at is not None

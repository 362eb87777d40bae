"""How choices, quiet hours, caps and duplicates decide each channel: pure rules first, then decide() on real Redis and PostgreSQL."""

import threading
from datetime import UTC, datetime, time, timedelta

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext

from preferences import policy, store
from preferences.defaults import DEFAULT_POLICIES
from preferences.models import CategorySetting, Preferences
from preferences.policy import HOLD, SEND, SUPPRESS, ChannelDecision, candidate_channels, decide, preference_decisions
from preferences.snapshot import CategoryChoice, CategoryPolicy, Choices, category_channels, opted_out_reason
from tests.factories import make_recipient

MARKETING = DEFAULT_POLICIES["marketing"]


SOCIAL = DEFAULT_POLICIES["social"]


SECURITY = DEFAULT_POLICIES["security"]


QUIET = {"quiet_hours_enabled": True, "quiet_hours_start": time(22), "quiet_hours_end": time(7)}


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_an_opt_in_category_is_off_until_the_person_opts_in():
    assert opted_out_reason(Choices(), MARKETING, "email") == "not_opted_in"
    opted_in = Choices(categories={"marketing": CategoryChoice(enabled=True)})
    assert opted_out_reason(opted_in, MARKETING, "email") is None


def test_each_level_of_the_hierarchy_can_opt_out():
    everything_off = Choices(enabled=False)
    social_off = Choices(categories={"social": CategoryChoice(enabled=False)})
    push_off = Choices(channels={"push": False})
    social_in_app_only = Choices(categories={"social": CategoryChoice(channels=("in_app",))})

    assert opted_out_reason(everything_off, SOCIAL, "in_app") == "opted_out"
    assert opted_out_reason(social_off, SOCIAL, "in_app") == "opted_out"
    assert opted_out_reason(push_off, SOCIAL, "push") == "opted_out"
    assert opted_out_reason(push_off, SOCIAL, "in_app") is None
    assert opted_out_reason(social_in_app_only, SOCIAL, "push") == "opted_out"
    assert opted_out_reason(social_in_app_only, SOCIAL, "in_app") is None


def test_an_unsubscribe_link_is_reported_as_unsubscribed():
    choices = Choices(categories={"social": CategoryChoice(enabled=False, unsubscribed_at="2024-01-01T00:00:00+00:00")})

    assert opted_out_reason(choices, SOCIAL, "push") == "unsubscribed"


def test_a_required_category_ignores_every_opt_out():
    choices = Choices(
        enabled=False, channels={"sms": False},
        categories={"security": CategoryChoice(enabled=False, channels=("email",))},
    )

    assert [opted_out_reason(choices, SECURITY, c) for c in ("push", "sms", "email")] == [None, None, None]
    assert category_channels(choices, SECURITY) == ("push", "sms", "email")


def test_the_persons_channel_list_replaces_the_category_default():
    choices = Choices(categories={"social": CategoryChoice(channels=("in_app",))})

    assert category_channels(choices, SOCIAL) == ("in_app",)
    assert category_channels(Choices(), SOCIAL) == ("push", "in_app")


def test_quiet_hours_hold_push_and_sms_but_send_email_and_in_app_now():
    # given 23:00 in Berlin for someone with quiet hours 22:00-07:00
    choices = Choices(**QUIET)
    policy = DEFAULT_POLICIES["transaction"]
    now = utc(2024, 1, 15, 22, 0)

    decisions = preference_decisions(choices, policy, ["push", "sms", "email", "in_app"], "high", "Europe/Berlin", now)

    held_until = utc(2024, 1, 16, 6, 0)
    assert decisions == [
        ChannelDecision("push", HOLD, "quiet_hours_held_until", held_until),
        ChannelDecision("sms", HOLD, "quiet_hours_held_until", held_until),
        ChannelDecision("email", SEND),
        ChannelDecision("in_app", SEND),
    ]


def test_critical_priority_and_categories_exempt_from_quiet_hours_go_now():
    choices = Choices(**QUIET)
    now = utc(2024, 1, 15, 22, 0)

    critical = preference_decisions(choices, DEFAULT_POLICIES["transaction"], ["push"], "critical", "Europe/Berlin", now)
    security = preference_decisions(choices, SECURITY, ["push", "sms"], "high", "Europe/Berlin", now)

    assert critical == [ChannelDecision("push", SEND)]
    assert [d.action for d in security] == [SEND, SEND]


def test_which_channels_wait_is_configurable_per_category():
    choices = Choices(**QUIET)
    policy = CategoryPolicy("reminder", ("push", "email"), quiet_hours_held_channels=("push", "email"))

    decisions = preference_decisions(choices, policy, ["email", "in_app"], "medium", "Europe/Berlin", utc(2024, 1, 15, 22))

    assert [d.action for d in decisions] == [HOLD, SEND]


def test_an_opted_out_channel_is_suppressed_even_during_quiet_hours():
    choices = Choices(channels={"push": False}, **QUIET)

    decisions = preference_decisions(choices, SOCIAL, ["push"], "medium", "Europe/Berlin", utc(2024, 1, 15, 22))

    assert decisions == [ChannelDecision("push", SUPPRESS, "opted_out")]


NOON = datetime(2024, 1, 15, 12, 0, tzinfo=UTC)


def set_category(category: str, **fields) -> None:
    CategorySetting.objects.update_or_create(category=category, defaults=fields)
    store.forget_category_policies()


def choose(recipient, **fields) -> None:
    Preferences.objects.update_or_create(recipient=recipient, defaults=fields)
    cache.delete(store.choices_key(recipient.pk))


def actions(decisions: list[ChannelDecision]) -> list[tuple[str, str]]:
    return [(d.action, d.reason) for d in decisions]


@pytest.mark.django_db
def test_with_warm_caches_deciding_makes_no_sql_queries():
    # given a person with choices and quiet hours, and caches warmed by one routing
    recipient = make_recipient("ada", timezone="Europe/Berlin")
    choose(recipient, quiet_hours_enabled=True, quiet_hours_start=time(22), quiet_hours_end=time(7),
           categories={"social": {"channels": ["push", "in_app"]}})
    decide(recipient, "social", ["push"], "medium", "warm-up", NOON)

    # when
    with CaptureQueriesContext(connection) as queries:
        channels = candidate_channels(recipient, "social")
        decisions = decide(recipient, "social", channels, "medium", "k1", NOON)

    # then
    assert len(queries) == 0, [q["sql"] for q in queries.captured_queries]
    assert [d.action for d in decisions] == [SEND, SEND]


@pytest.mark.django_db
def test_candidates_are_the_persons_list_for_the_category_else_the_default():
    recipient = make_recipient("ada")
    assert candidate_channels(recipient, "transaction") == ["email", "push", "in_app"]

    choose(recipient, categories={"transaction": {"channels": ["email"]}})

    assert candidate_channels(recipient, "transaction") == ["email"]
    assert candidate_channels(recipient, "security") == ["push", "sms", "email"]


@pytest.mark.django_db
def test_the_hourly_cap_slides_with_time():
    # given reminders capped at 2 an hour
    set_category("reminder", channels=["push"], hourly_cap=2, daily_cap=None)
    recipient = make_recipient("ada")

    def send(key: str, at: datetime) -> str:
        return decide(recipient, "reminder", ["push"], "medium", key, at)[0].reason

    # when / then: two pass, the third within the hour is capped
    assert send("a", NOON) == ""
    assert send("b", NOON + timedelta(minutes=30)) == ""
    assert send("c", NOON + timedelta(minutes=59)) == "frequency_capped"
    # an hour after the first, one slot is free again; the second still counts
    assert send("d", NOON + timedelta(hours=1)) == ""
    assert send("e", NOON + timedelta(hours=1, minutes=1)) == "frequency_capped"


@pytest.mark.django_db
def test_the_daily_cap_counts_the_last_24_hours():
    # given reminders capped at 3 a day (and not per hour)
    set_category("reminder", channels=["push"], hourly_cap=None, daily_cap=3)
    recipient = make_recipient("ada")
    sent_at = [NOON, NOON + timedelta(hours=5), NOON + timedelta(hours=10)]
    for i, at in enumerate(sent_at):
        assert decide(recipient, "reminder", ["push"], "medium", f"k{i}", at)[0].action == SEND

    # when / then
    assert decide(recipient, "reminder", ["push"], "medium", "k3", NOON + timedelta(hours=23))[0].reason == "frequency_capped"
    assert decide(recipient, "reminder", ["push"], "medium", "k4", NOON + timedelta(hours=24))[0].action == SEND


@pytest.mark.django_db
def test_caps_are_per_person_and_category_and_count_notifications_not_channels():
    set_category("social", channels=["push", "in_app"], hourly_cap=1, daily_cap=None)
    ada, bob = make_recipient("ada"), make_recipient("bob")

    first = decide(ada, "social", ["push", "in_app", "email"], "medium", "k1", NOON)
    second = decide(ada, "social", ["in_app"], "medium", "k2", NOON)
    other_person = decide(bob, "social", ["push"], "medium", "k3", NOON)
    other_category = decide(ada, "transaction", ["push"], "high", "k4", NOON)

    assert [d.action for d in first] == [SEND, SEND, SEND]
    assert actions(second) == [(SUPPRESS, "frequency_capped")]
    assert [d.action for d in other_person + other_category] == [SEND, SEND]


@pytest.mark.django_db
def test_a_notification_blocked_by_preferences_consumes_no_cap_and_no_dedup_slot():
    # given marketing (opt-in, 2 an hour) not yet opted into
    set_category("marketing", channels=["email"], opt_in=True, hourly_cap=2, daily_cap=5)
    recipient = make_recipient("ada")
    for i in range(3):
        assert actions(decide(recipient, "marketing", ["email"], "low", f"k{i}", NOON)) == [(SUPPRESS, "not_opted_in")]

    # when the person opts in
    choose(recipient, categories={"marketing": {"enabled": True}})

    # then the full cap is still there, and the earlier keys are not duplicates
    results = [decide(recipient, "marketing", ["email"], "low", f"k{i}", NOON)[0] for i in range(3)]
    assert [(d.action, d.reason) for d in results] == [(SEND, ""), (SEND, ""), (SUPPRESS, "frequency_capped")]


@pytest.mark.django_db
def test_the_same_key_within_the_window_is_a_duplicate_on_every_channel():
    set_category("transaction", channels=["email", "push"], dedup_window_seconds=3600)
    recipient = make_recipient("ada")

    first = decide(recipient, "transaction", ["email", "push"], "high", "same", NOON)
    again = decide(recipient, "transaction", ["email", "push"], "high", "same", NOON + timedelta(minutes=59))
    other = decide(recipient, "transaction", ["email"], "high", "different", NOON + timedelta(minutes=59))
    later = decide(recipient, "transaction", ["email"], "high", "same", NOON + timedelta(minutes=61))

    assert [d.action for d in first] == [SEND, SEND]
    assert actions(again) == [(SUPPRESS, "duplicate"), (SUPPRESS, "duplicate")]
    assert [d.action for d in other + later] == [SEND, SEND]


@pytest.mark.django_db
def test_a_duplicate_consumes_no_cap_and_a_capped_notification_records_no_dedup_key():
    set_category("reminder", channels=["push"], hourly_cap=1, daily_cap=None)
    recipient = make_recipient("ada")

    assert decide(recipient, "reminder", ["push"], "medium", "a", NOON)[0].action == SEND
    assert decide(recipient, "reminder", ["push"], "medium", "a", NOON)[0].reason == "duplicate"
    assert decide(recipient, "reminder", ["push"], "medium", "b", NOON)[0].reason == "frequency_capped"
    # an hour later "b" was never recorded, so it is not a duplicate
    assert decide(recipient, "reminder", ["push"], "medium", "b", NOON + timedelta(hours=1))[0].action == SEND


@pytest.mark.django_db
def test_a_notification_held_for_quiet_hours_counts_against_the_cap():
    # given 23:00 in Berlin for someone with quiet hours, reminders capped at 1 an hour
    set_category("reminder", channels=["push"], hourly_cap=1, daily_cap=None)
    recipient = make_recipient("ada", timezone="Europe/Berlin")
    choose(recipient, quiet_hours_enabled=True, quiet_hours_start=time(22), quiet_hours_end=time(7))
    night = datetime(2024, 1, 15, 22, 0, tzinfo=UTC)

    held = decide(recipient, "reminder", ["push"], "medium", "a", night)
    capped = decide(recipient, "reminder", ["push"], "medium", "b", night)

    assert held == [ChannelDecision("push", HOLD, "quiet_hours_held_until", datetime(2024, 1, 16, 6, 0, tzinfo=UTC))]
    assert actions(capped) == [(SUPPRESS, "frequency_capped")]


@pytest.mark.django_db
def test_a_required_category_reaches_someone_who_turned_everything_off():
    recipient = make_recipient("ada")
    choose(recipient, enabled=False, channels={"push": False, "sms": False, "email": False})

    security = decide(recipient, "security", ["push", "sms", "email"], "critical", "k", NOON)
    reminder = decide(recipient, "reminder", ["push"], "medium", "k2", NOON)

    assert [d.action for d in security] == [SEND, SEND, SEND]
    assert actions(reminder) == [(SUPPRESS, "opted_out")]


@pytest.mark.django_db
def test_an_edit_through_the_store_reaches_the_next_decision():
    # given cached choices
    recipient = make_recipient("ada")
    assert decide(recipient, "social", ["push"], "medium", "k1", NOON)[0].action == SEND

    # when the person turns social off through the store (as the API does)
    def social_off(row):
        row.categories = {"social": {"enabled": False}}
        return True

    store.update_choices(recipient, 0, social_off)

    # then
    assert actions(decide(recipient, "social", ["push"], "medium", "k2", NOON)) == [(SUPPRESS, "opted_out")]


@pytest.mark.django_db
def test_under_concurrent_workers_exactly_the_cap_is_admitted():
    # given social capped at 10 an hour, and caches warm so the threads need only Redis
    set_category("social", channels=["push"], hourly_cap=10, daily_cap=50)
    recipient = make_recipient("ada")
    candidate_channels(recipient, "social")
    start = threading.Barrier(20)
    results: list[str] = []
    lock = threading.Lock()

    def worker(i: int) -> None:
        start.wait()
        decision = decide(recipient, "social", ["push"], "medium", f"key-{i}", NOON)[0]
        with lock:
            results.append(decision.action)

    # when 20 notifications are decided at once
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    # then exactly 10 were admitted
    assert sorted(results) == [SEND] * 10 + [SUPPRESS] * 10


@pytest.mark.django_db
def test_the_same_notification_decided_by_concurrent_workers_goes_out_once():
    recipient = make_recipient("ada")
    candidate_channels(recipient, "transaction")
    start = threading.Barrier(20)
    results: list[str] = []

    def worker() -> None:
        start.wait()
        results.append(decide(recipient, "transaction", ["email"], "high", "same-key", NOON)[0].action)

    threads = [threading.Thread(target=worker) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert sorted(results) == [SEND] + [SUPPRESS] * 19


def test_an_unknown_category_gets_no_defaults_or_limits(db):
    recipient = make_recipient("ada")

    assert candidate_channels(recipient, "carrier_pigeon") == []
    assert [d.action for d in policy.decide(recipient, "carrier_pigeon", ["email"], "low", "k", NOON)] == [SEND]


@pytest.mark.django_db
def test_ops_edit_a_category_in_admin_and_the_next_decision_follows(admin_client):
    # given a cached policy: reminders uncapped
    set_category("reminder", channels=["push", "email"], hourly_cap=None, daily_cap=None)
    recipient = make_recipient("ada")
    assert decide(recipient, "reminder", ["push"], "medium", "k1", NOON)[0].action == SEND
    setting = CategorySetting.objects.get(category="reminder")

    # when ops cap reminders at 1 an hour and drop email from the defaults
    response = admin_client.post(
        f"/admin/preferences/categorysetting/{setting.pk}/change/",
        {
            "category": "reminder", "channels": ["push"], "quiet_hours_held_channels": ["push", "sms"],
            "respects_quiet_hours": "on", "hourly_cap": "1", "daily_cap": "", "dedup_window_seconds": "3600",
            "batch_window_seconds": "0", "default_send_hour": "10",
        },
    )

    # then
    assert response.status_code == 302, response.content.decode()[:2000]
    assert candidate_channels(recipient, "reminder") == ["push"]
    assert decide(recipient, "reminder", ["push"], "medium", "k2", NOON)[0].action == SEND
    assert decide(recipient, "reminder", ["push"], "medium", "k3", NOON)[0].reason == "frequency_capped"


@pytest.mark.django_db
def test_admin_refuses_a_required_category_that_could_be_opted_out_of(admin_client):
    setting, _ = CategorySetting.objects.update_or_create(category="security", defaults={"required": True})

    response = admin_client.post(
        f"/admin/preferences/categorysetting/{setting.pk}/change/",
        {"category": "security", "channels": ["push"], "required": "on", "opt_in": "on", "dedup_window_seconds": "3600"},
    )

    assert response.status_code == 200  # the form again, with the error
    assert "cannot be opt-in" in response.content.decode()
    assert CategorySetting.objects.get(pk=setting.pk).opt_in is False


@pytest.mark.django_db
def test_the_admin_pages_for_people_and_categories_render(admin_client):
    recipient = make_recipient("ada")
    Preferences.objects.create(recipient=recipient, enabled=False)

    assert admin_client.get("/admin/preferences/categorysetting/").status_code == 200
    assert admin_client.get(f"/admin/preferences/recipient/{recipient.pk}/change/").status_code == 200


@pytest.mark.django_db
def test_ops_set_a_categorys_default_digest_in_admin_and_a_bad_one_is_refused(admin_client):
    setting, _ = CategorySetting.objects.update_or_create(category="social", defaults={})
    form = {"category": "social", "channels": ["push"], "quiet_hours_held_channels": ["push"], "dedup_window_seconds": "3600",
            "batch_window_seconds": "0", "default_send_hour": "10"}

    bad = admin_client.post(f"/admin/preferences/categorysetting/{setting.pk}/change/",
                            {**form, "digest": '{"frequency": "weekly", "time": "08:00", "weekday": "funday"}'})
    good = admin_client.post(f"/admin/preferences/categorysetting/{setting.pk}/change/",
                             {**form, "digest": '{"frequency": "weekly", "time": "08:00", "weekday": "monday"}'})

    assert bad.status_code == 200 and "weekday" in bad.content.decode()
    assert good.status_code == 302
    assert CategorySetting.objects.get(pk=setting.pk).digest == {"frequency": "weekly", "time": "08:00", "weekday": "monday"}

"""The launch defaults per category. Rows in CategorySetting (seeded from the same values by
migration 0003, then edited by ops in admin) override them; these apply only to a category that
has no row, so routing never runs without a policy."""

from preferences.snapshot import CategoryPolicy

DEFAULT_POLICIES: dict[str, CategoryPolicy] = {
    "security": CategoryPolicy("security", ("push", "sms", "email"), required=True, respects_quiet_hours=False),
    "transaction": CategoryPolicy("transaction", ("email", "push", "in_app")),
    "reminder": CategoryPolicy("reminder", ("push", "email")),
    "social": CategoryPolicy("social", ("push", "in_app"), hourly_cap=10, daily_cap=50, list_unsubscribe=True),
    "marketing": CategoryPolicy(
        "marketing", ("email",), opt_in=True, hourly_cap=2, daily_cap=5, list_unsubscribe=True
    ),
}

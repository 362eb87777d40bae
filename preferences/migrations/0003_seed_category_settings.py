from django.db import migrations

# A snapshot of the launch defaults; ops change them in admin afterwards.
SEED = {
    "security": dict(
        channels=["push", "sms", "email"], required=True, respects_quiet_hours=False, dedup_window_seconds=3600,
    ),
    "transaction": dict(channels=["email", "push", "in_app"]),
    "reminder": dict(channels=["push", "email"]),
    "social": dict(channels=["push", "in_app"], hourly_cap=10, daily_cap=50, list_unsubscribe=True),
    "marketing": dict(channels=["email"], opt_in=True, hourly_cap=2, daily_cap=5, list_unsubscribe=True),
}


def seed(apps, schema_editor):
    CategorySetting = apps.get_model("preferences", "CategorySetting")
    for category, fields in SEED.items():
        CategorySetting.objects.get_or_create(category=category, defaults=fields)


def unseed(apps, schema_editor):
    apps.get_model("preferences", "CategorySetting").objects.filter(category__in=SEED).delete()


class Migration(migrations.Migration):
    dependencies = [("preferences", "0002_category_settings_and_preferences")]

    operations = [migrations.RunPython(seed, unseed)]

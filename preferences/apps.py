from django.apps import AppConfig
from django.db import transaction
from django.db.models.signals import post_delete, post_save


class PreferencesConfig(AppConfig):
    name = "preferences"
    verbose_name = "People and preferences"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from preferences.models import CategorySetting

        post_save.connect(_category_setting_changed, sender=CategorySetting, dispatch_uid="category-setting-saved")
        post_delete.connect(_category_setting_changed, sender=CategorySetting, dispatch_uid="category-setting-deleted")


def _category_setting_changed(**kwargs):
    from preferences.store import forget_category_policies

    # Now, so this transaction reads the change; after commit, in case a reader re-cached the old rows.
    forget_category_policies()
    transaction.on_commit(forget_category_policies)

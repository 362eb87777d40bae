from django.apps import AppConfig


class InboxConfig(AppConfig):
    name = "inbox"
    verbose_name = "In-app inbox"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from core import personal_data as registry
        from inbox import personal_data

        registry.register("inbox", section="inbox", export=personal_data.export, erase=personal_data.erase)

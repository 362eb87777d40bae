from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "notifications"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from core import personal_data as registry
        from notifications import personal_data

        registry.register("notifications", section="notifications", export=personal_data.export, erase=personal_data.erase)

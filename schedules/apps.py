from django.apps import AppConfig


class SchedulesConfig(AppConfig):
    name = "schedules"
    verbose_name = "Schedules"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from core import personal_data as registry
        from schedules import personal_data

        registry.register("schedules", section="schedules", export=personal_data.export, erase=personal_data.erase)

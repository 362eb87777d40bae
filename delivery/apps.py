from django.apps import AppConfig


class DeliveryConfig(AppConfig):
    name = "delivery"
    verbose_name = "Delivery"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from core import personal_data as registry
        from delivery import personal_data

        registry.register("delivery", erase=personal_data.erase)

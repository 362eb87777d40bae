from django.apps import AppConfig


class CampaignsConfig(AppConfig):
    name = "campaigns"
    verbose_name = "Campaigns and topics"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from campaigns import personal_data
        from core import personal_data as registry

        registry.register("campaigns", section="topics", export=personal_data.export, erase=personal_data.erase)

from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "notifications"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from core import personal_data as registry
        from delivery import signals
        from notifications import lifecycle, personal_data, routing

        signals.delivery_moved.connect(lifecycle.on_delivery_moved, dispatch_uid="notifications-roll-up")
        signals.deliveries_sent.connect(lifecycle.on_deliveries_sent, dispatch_uid="notifications-roll-up-chunk")
        signals.delivery_cannot_reach.connect(routing.on_delivery_cannot_reach, dispatch_uid="notifications-fall-back")
        registry.register("notifications", section="notifications", export=personal_data.export, erase=personal_data.erase)

from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "notifications"
    verbose_name = "Notifications"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from core import personal_data as registry
        from delivery import signals
        from notifications import escalation, lifecycle, personal_data, routing
        from templates_app import admin as templates_admin

        # Escalation first: it may wait on a step the sweep is firing, so it runs before the roll-up writes the notification.
        signals.delivery_moved.connect(escalation.on_delivery_moved, dispatch_uid="notifications-escalation")
        signals.delivery_moved.connect(lifecycle.on_delivery_moved, dispatch_uid="notifications-roll-up")
        signals.deliveries_sent.connect(lifecycle.on_deliveries_sent, dispatch_uid="notifications-roll-up-chunk")
        signals.delivery_cannot_reach.connect(routing.on_delivery_cannot_reach, dispatch_uid="notifications-fall-back")
        registry.register("notifications", section="notifications", export=personal_data.export, erase=personal_data.erase)
        templates_admin.send_test_hook = send_test


def send_test(version, user_id: str, variables: dict) -> str:
    """Admin's "send a test": one notification to `user_id` rendering `version` on each of its channels."""
    from notifications.accept import accept_notification
    from notifications.routing import TEST_VERSION_KEY

    channels = sorted({content["channel"] for content in version.contents})
    accepted = accept_notification(
        {"user_id": user_id, "type": version.template.category or "transaction", "template": version.template.name,
         "variables": variables, "channels": channels, "metadata": {TEST_VERSION_KEY: version.number}},
        raw_payload={}, api_key=None, idempotency_key=None,
    )
    return str(accepted.notification.pk)

from django.contrib import admin
from django.utils.html import format_html

from campaigns.models import Campaign, Topic, TopicSubscription
from core.admin import AuditAdmin, DateRangeFilter, changelist_url, short_id


@admin.register(Campaign)
class CampaignAdmin(AuditAdmin):
    """Created, fanned out and canceled through the API; a form here would bypass its checks and its fan-out."""

    list_display = ["id_short", "name", "type", "template_name", "status", "targeted", "accepted", "created_at"]
    list_filter = ["status", "type", ("created_at", DateRangeFilter)]
    search_fields = ["name", "template_name"]
    ordering = ["-created_at"]
    exclude = ["audience"]  # up to 100,000 user ids: not for a page
    readonly_fields = ["its_notifications"]

    @admin.display(description="id")
    def id_short(self, campaign):
        return short_id(campaign.pk)

    @admin.display(description="notifications")
    def its_notifications(self, campaign):
        return format_html('<a href="{}">Its notifications</a>',
                           changelist_url("notifications.notification", campaign_id=campaign.pk))


@admin.register(Topic)
class TopicAdmin(admin.ModelAdmin):
    list_display = ["key", "name", "created_at"]
    search_fields = ["key", "name"]


@admin.register(TopicSubscription)
class TopicSubscriptionAdmin(admin.ModelAdmin):
    list_display = ["topic", "recipient", "created_at"]
    list_select_related = ["topic", "recipient"]
    raw_id_fields = ["recipient"]
    list_filter = ["topic"]

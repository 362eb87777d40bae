from django.contrib import admin

from campaigns.models import Campaign, Topic, TopicSubscription


@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "type", "template_name", "status", "targeted", "accepted", "created_at"]
    list_filter = ["status", "type"]
    search_fields = ["id", "name", "template_name"]
    exclude = ["audience"]  # up to 100,000 user ids: not for a form
    readonly_fields = ["status", "cursor", "progressed_at", "fanned_out_at", "canceled_at", "targeted", "accepted", "skipped", "created_at"]


@admin.register(Topic)
class TopicAdmin(admin.ModelAdmin):
    list_display = ["key", "name", "created_at"]
    search_fields = ["key", "name"]


@admin.register(TopicSubscription)
class TopicSubscriptionAdmin(admin.ModelAdmin):
    list_display = ["topic", "recipient", "created_at"]
    raw_id_fields = ["recipient"]
    list_filter = ["topic"]

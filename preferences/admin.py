from django import forms
from django.contrib import admin

from core.vocabulary import Channel
from preferences.models import CategorySetting, Device, Preferences, Recipient


class DeviceInline(admin.TabularInline):
    model = Device
    extra = 0
    fields = ["platform", "token", "is_active", "invalidated_reason", "invalidated_at", "registered_at"]
    readonly_fields = ["registered_at"]


class PreferencesInline(admin.StackedInline):
    """Shown, not edited: people change their choices through the API, which checks versions."""

    model = Preferences
    can_delete = False
    fields = ["version", "enabled", "channels", "categories", "quiet_hours_enabled", "quiet_hours_start", "quiet_hours_end", "updated_at"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Recipient)
class RecipientAdmin(admin.ModelAdmin):
    list_display = ["external_id", "email", "phone", "locale", "timezone", "is_active", "created_at"]
    list_filter = ["is_active", "locale"]
    search_fields = ["external_id", "email", "phone"]
    inlines = [PreferencesInline, DeviceInline]


@admin.register(Device)
class DeviceAdmin(admin.ModelAdmin):
    list_display = ["recipient", "platform", "is_active", "invalidated_reason", "registered_at"]
    list_select_related = ["recipient"]
    list_filter = ["platform", "is_active"]
    search_fields = ["token", "recipient__external_id"]
    raw_id_fields = ["recipient"]


class CategorySettingForm(forms.ModelForm):
    channels = forms.MultipleChoiceField(choices=Channel.choices, widget=forms.CheckboxSelectMultiple, required=False)
    quiet_hours_held_channels = forms.MultipleChoiceField(
        choices=Channel.choices, widget=forms.CheckboxSelectMultiple, required=False
    )

    class Meta:
        model = CategorySetting
        fields = "__all__"


@admin.register(CategorySetting)
class CategorySettingAdmin(admin.ModelAdmin):
    form = CategorySettingForm
    list_display = [
        "category", "channels", "required", "opt_in", "respects_quiet_hours", "hourly_cap", "daily_cap",
        "dedup_window_seconds", "list_unsubscribe", "updated_at",
    ]
    fieldsets = [
        (None, {"fields": ["category", "channels", "required", "opt_in", "list_unsubscribe"]}),
        ("Quiet hours", {"fields": ["respects_quiet_hours", "quiet_hours_held_channels"]}),
        ("Limits", {"fields": ["hourly_cap", "daily_cap", "dedup_window_seconds"]}),
        ("Batching", {"fields": ["batch_window_seconds", "batch_max_window_seconds", "batch_max_items", "batch_first_at_once"]}),
        ("Digest", {"fields": ["digest"]}),
        ("Escalation and send time", {"fields": ["escalation", "default_send_hour"]}),
    ]

    def has_delete_permission(self, request, obj=None):
        # Every category needs a policy; change it instead.
        return False

from django.contrib import admin

from templates_app.models import Template


@admin.register(Template)
class TemplateAdmin(admin.ModelAdmin):
    list_display = ["name", "channel", "locale", "updated_at"]
    list_filter = ["channel", "locale"]
    search_fields = ["name", "subject", "title", "body"]

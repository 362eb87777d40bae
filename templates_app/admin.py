from django import forms
from django.contrib import admin

from templates_app.models import Template
from templates_app.rendering import HTML_FIELDS, TEXT_FIELDS, template_problem


class TemplateForm(forms.ModelForm):
    class Meta:
        model = Template
        fields = "__all__"

    def clean(self):
        cleaned = super().clean()
        problem = template_problem({field: cleaned.get(field) or "" for field in TEXT_FIELDS + HTML_FIELDS})
        if problem:
            self.add_error(problem[0], problem[1])
        return cleaned


@admin.register(Template)
class TemplateAdmin(admin.ModelAdmin):
    form = TemplateForm
    list_display = ["name", "channel", "locale", "updated_at"]
    list_filter = ["channel", "locale"]
    search_fields = ["name", "subject", "title", "body"]

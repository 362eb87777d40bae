"""Templates for ops staff: versions with their history, a diff between any two, a preview of every
channel × locale, publishing (with the checks of the API) and "send a test"."""

import json

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from rest_framework.exceptions import ValidationError

from core import sms_text
from core.admin import HistoryInline
from core.errors import ApiError
from templates_app import rendering, versions
from templates_app.models import MessageTemplate, Template, TemplateVersion
from templates_app.rendering import RenderError
from templates_app.serializers import ContentRequest
from templates_app.variables import variable_errors

# What a lock screen shows before cutting (iOS and Android, typical): past this, people miss it.
PUSH_LIMITS = {"title": 50, "body": 178}
# Set by the notifications app (NotificationsConfig.ready): sends a test of a version to a person.
send_test_hook = None


@admin.register(Template)
class TemplateAdmin(admin.ModelAdmin):
    """The contents of each template's current version (what is sent now); edit through versions."""

    list_display = ["name", "channel", "locale", "updated_at"]
    list_filter = ["channel", "locale"]
    search_fields = ["name", "subject", "title", "body"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class VersionInline(HistoryInline):
    model = TemplateVersion
    fields = ["version_link", "note", "created_at", "published_at"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("template")  # version_link reads it for every row

    @admin.display(description="version")
    def version_link(self, version):
        current = " (current)" if version.template.current_version == version.number else ""
        url = reverse("admin:templates_app_templateversion_change", args=[version.pk])
        return format_html('<a href="{}">v{}{}</a>', url, version.number, current)


@admin.register(MessageTemplate)
class MessageTemplateAdmin(admin.ModelAdmin):
    list_display = ["name", "category", "current_version", "created_at"]
    search_fields = ["name", "description"]
    fields = ["name", "description", "category", "current_version"]
    inlines = [VersionInline]

    def get_readonly_fields(self, request, obj=None):
        # Notifications and deliveries name a template by its name: renaming would orphan them.
        return ["current_version", "name"] if obj is not None else ["current_version"]

    def has_delete_permission(self, request, obj=None):
        return False  # deliveries point at its versions


class VersionForm(forms.ModelForm):
    contents = forms.JSONField(help_text='A list of {"channel", "locale", "subject", "title", "body", "html_body"}.')
    variables_schema = forms.JSONField(required=False)

    class Meta:
        model = TemplateVersion
        fields = ["template", "contents", "variables_schema", "default_locale", "note"]

    def clean_contents(self):
        contents = self.cleaned_data["contents"]
        checked = ContentRequest(data=contents, many=True) if isinstance(contents, list) else None
        if checked is None or not checked.is_valid():
            raise forms.ValidationError(f"Each content is {{channel, locale, subject, title, body, html_body}}: "
                                        f"{checked.errors if checked is not None else 'a list is expected'}")
        contents = [dict(c) for c in checked.validated_data]
        problems = versions.content_problems(contents)
        if problems:
            raise forms.ValidationError([f"{field}: {message}" for field, message in problems])
        return versions.normalized(contents)


@admin.register(TemplateVersion)
class TemplateVersionAdmin(admin.ModelAdmin):
    form = VersionForm
    list_display = ["template", "number", "status", "note", "created_at", "published_at"]
    list_filter = ["template"]
    list_select_related = ["template"]
    change_form_template = "admin/templates_app/version_change_form.html"

    @admin.display(description="status")
    def status(self, version):
        if version.template.current_version == version.number:
            return "current"
        return "draft" if version.is_draft else "published"

    def get_readonly_fields(self, request, obj=None):
        # A published version never changes; a draft's template is fixed once it exists.
        if obj is not None and not obj.is_draft:
            return ["template", "number", "contents", "variables_schema", "default_locale", "note", "published_at"]
        return ["template", "number"] if obj is not None else []

    def has_delete_permission(self, request, obj=None):
        return obj is None or obj.is_draft  # a published version may be what a delivery was pinned to

    def save_model(self, request, obj, form, change):
        with transaction.atomic():  # the lock publishing takes: a version published meanwhile stays as published
            MessageTemplate.objects.select_for_update().filter(pk=obj.template_id).first()
            if change and TemplateVersion.objects.filter(pk=obj.pk, published_at__isnull=False).exists():
                messages.error(request, "This version was published meanwhile; it was not changed.")
                return
            if not change:
                obj.number = (obj.template.versions.order_by("-number").values_list("number", flat=True).first() or 0) + 1
            super().save_model(request, obj, form, change)

    def get_urls(self):
        own = [
            path("<int:pk>/preview/", self.admin_site.admin_view(self.preview), name="templates_app_templateversion_preview"),
            path("<int:pk>/diff/", self.admin_site.admin_view(self.diff), name="templates_app_templateversion_diff"),
            path("<int:pk>/publish/", self.admin_site.admin_view(self.publish), name="templates_app_templateversion_publish"),
            path("<int:pk>/send-test/", self.admin_site.admin_view(self.send_test), name="templates_app_templateversion_send_test"),
        ]
        return own + super().get_urls()

    def version_to_view(self, request, pk) -> TemplateVersion:
        """The version a page shows, if this user may see it."""
        version = get_object_or_404(TemplateVersion.objects.select_related("template"), pk=pk)
        if not self.has_view_permission(request, version):
            raise PermissionDenied
        return version

    def page_context(self, request, version: TemplateVersion, title: str) -> dict:
        return {**self.admin_site.each_context(request), "title": title, "version": version, "opts": self.model._meta,
                "original": version, "has_view_permission": True}

    def preview(self, request, pk):
        """Every channel × locale rendered with sample variables (the schema's, or the ones typed in)."""
        version = self.version_to_view(request, pk)
        asked = request.POST if request.method == "POST" else request.GET  # a form posts: variables may span lines
        sample = versions.sample_for(version)
        typed = asked.get("variables")
        problems = []
        if typed:
            try:
                sample = json.loads(typed)
            except ValueError as exc:
                problems.append(f"variables: not JSON ({exc})")
        if isinstance(sample, dict) and version.variables_schema:
            problems += [f"{field}: {message}" for field, message in variable_errors(version.variables_schema, sample)]
        locale, timezone = asked.get("locale") or version.default_locale, asked.get("timezone") or "UTC"
        only = asked.get("only_locale")
        shown = [c for c in version.contents if not only or c["locale"] == only]
        try:
            rendered = rendering.render_each(shown, sample if isinstance(sample, dict) else {}, locale, timezone)
        except RenderError as exc:
            rendered = []
            problems.append(f"Rendering stopped: {exc}")
        previews = [preview_of(content, result) for content, result in zip(shown, rendered)]
        if len(rendered) < len(shown) and rendered:
            problems.append(f"{len(shown) - len(rendered)} contents were not rendered: the request's render limit was reached.")
        context = {**self.page_context(request, version, f"Preview of {version}"), "previews": previews,
                   "variables": json.dumps(sample, indent=2), "problems": problems, "locale": locale, "timezone": timezone,
                   "locales": sorted({c["locale"] for c in version.contents}), "only_locale": only}
        return TemplateResponse(request, "admin/templates_app/version_preview.html", context)

    def diff(self, request, pk):
        version = self.version_to_view(request, pk)
        others = version.template.versions.exclude(pk=pk)
        against = request.GET.get("against", "")
        other = (others.filter(number=int(against)).first() if against.isdigit() else None) or others.first()
        problem, tables = "", []
        if other:
            try:
                tables = diff_tables(other, version)
            except RenderError as exc:
                problem = f"The diff could not be made: {exc}"
        context = {**self.page_context(request, version, f"Changes in {version}"),
                   "other": other, "others": others, "tables": tables, "problem": problem}
        return TemplateResponse(request, "admin/templates_app/version_diff.html", context)

    def version_to_change(self, request, pk) -> TemplateVersion:
        """The version a POSTed action changes or sends, if this user may change it."""
        if request.method != "POST":
            raise PermissionDenied
        version = get_object_or_404(TemplateVersion.objects.select_related("template"), pk=pk)
        if not self.has_change_permission(request, version):
            raise PermissionDenied
        return version

    def publish(self, request, pk):
        version = self.version_to_change(request, pk)
        try:
            versions.publish(version.template.name, version.number)
        except ApiError as exc:
            messages.error(request, f"Not published: {exc.detail} ({exc.field})")
        else:
            self.log_change(request, version, "Published")
            messages.success(request, f"{version.template.name} v{version.number} is current: new sends render it.")
        return redirect("admin:templates_app_templateversion_change", pk)

    def send_test(self, request, pk):
        version = self.version_to_change(request, pk)
        try:
            variables = json.loads(request.POST.get("variables") or "null")
        except ValueError:
            variables = None
        if not isinstance(variables, dict):
            variables = versions.sample_for(version)
        try:
            notification_id = send_test_hook(version, request.POST.get("user_id", ""), variables)
        except (ApiError, ValidationError) as exc:
            messages.error(request, f"Test not sent: {getattr(exc, 'detail', exc)}")
        else:
            self.log_change(request, version, f"Sent a test: notification {notification_id}")  # no user id: erasure never reaches the log
            messages.success(request, f"Test sent to {request.POST.get('user_id')}: notification {notification_id}.")
        return redirect("admin:templates_app_templateversion_change", pk)


def preview_of(content: dict, result: dict) -> dict:
    """One content's render, with what its channel needs to know: SMS encoding and segments, push lengths."""
    found = {"channel": content["channel"], "locale": content["locale"], "rendered": {}, "error": "", "notes": []}
    if "error" in result:
        field = result["field"].rpartition(".")[2] if result["field"] else "body"
        found["error"] = f"{field}: {result['error']}"
        return found
    found["rendered"] = result["ok"]
    if content["channel"] == "sms":
        sms = sms_text.prepare(found["rendered"].get("body", ""))
        found["notes"].append(f"{sms.encoding}, {sms.segments} segment{'s' if sms.segments > 1 else ''}, "
                              f"{len(sms.text)} characters{' (shortened to fit)' if sms.shortened else ''}")
    if content["channel"] in ("push", "in_app"):
        for part, limit in PUSH_LIMITS.items():
            length = len(found["rendered"].get(part, ""))
            if length > limit:
                found["notes"].append(f"{part} is {length} characters: lock screens cut it after about {limit}")
    return found


def diff_tables(old: TemplateVersion, new: TemplateVersion) -> list[dict]:
    """For each channel × locale in either version, the lines of each field that changed (made in a
    bounded process: drafts are as large as their authors make them)."""
    old_contents = {(c["channel"], c["locale"]): c for c in old.contents}
    new_contents = {(c["channel"], c["locale"]): c for c in new.contents}
    pairs = [(f"{key[0]}/{key[1]} {field}", (old_contents.get(key, {}).get(field) or ""),
              (new_contents.get(key, {}).get(field) or ""))
             for key in sorted(old_contents.keys() | new_contents.keys()) for field in versions.CONTENT_FIELDS]
    pairs.append(("variables schema", json.dumps(old.variables_schema, indent=2, sort_keys=True),
                  json.dumps(new.variables_schema, indent=2, sort_keys=True)))
    return rendering.diff([pair for pair in pairs if pair[1] != pair[2]])

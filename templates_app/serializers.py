from rest_framework import serializers

from core.serializers import StrictSerializer, choice
from core.vocabulary import Channel
from preferences.models import LOCALE
from templates_app.models import Template, TemplateVersion
from templates_app.rendering import HTML_FIELDS, TEXT_FIELDS, template_problem
from templates_app.variables import schema_error


def json_schema(value: dict) -> None:
    problem = schema_error(value)
    if problem:
        raise serializers.ValidationError(f"Not a valid JSON Schema: {problem}")


class ContentRequest(StrictSerializer):
    """One channel × locale content of a version."""

    channel = choice(Channel.choices, "channel")
    locale = serializers.CharField(max_length=35, required=False, default="en", validators=[LOCALE])
    subject = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")
    title = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")
    body = serializers.CharField(max_length=65536, required=False, allow_blank=True, default="")
    html_body = serializers.CharField(max_length=262144, required=False, allow_blank=True, default="")


class TemplateRequest(ContentRequest):
    """One channel × locale of a template, by the one-variant API (templates_app.versions.add_variant)."""

    name = serializers.SlugField(max_length=100)
    body = serializers.CharField(max_length=65536)
    variables_schema = serializers.DictField(required=False, default=dict, validators=[json_schema])

    def validate(self, attrs):
        attrs = super().validate(attrs)
        problem = template_problem({field: attrs.get(field, "") for field in TEXT_FIELDS + HTML_FIELDS})
        if problem:
            raise serializers.ValidationError({problem[0]: problem[1]})
        if attrs["channel"] == Channel.EMAIL and not attrs.get("subject"):
            raise serializers.ValidationError({"subject": "Email templates need a subject."})
        return attrs


class TemplateView(serializers.ModelSerializer):
    class Meta:
        model = Template
        fields = ["name", "channel", "locale", "subject", "title", "body", "html_body", "variables_schema", "created_at", "updated_at"]


class VersionRequest(StrictSerializer):
    """A draft: its contents (or `copy_from` an existing version), schema, default locale and note.

    `description` and `category` describe the template itself and are used when this creates it.
    """

    contents = ContentRequest(many=True, required=False)
    copy_from = serializers.IntegerField(min_value=1, required=False)
    variables_schema = serializers.DictField(required=False, validators=[json_schema])
    default_locale = serializers.CharField(max_length=35, required=False, validators=[LOCALE])
    note = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")
    description = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")
    category = serializers.CharField(max_length=50, required=False, allow_blank=True, default="")

    def validate_contents(self, value):
        if len(value) > 200:
            raise serializers.ValidationError("At most 200 channel × locale contents.")
        return value


class VersionEdit(VersionRequest):
    """Changes to a draft; only what is given changes."""

    copy_from = None
    description = None
    category = None
    note = serializers.CharField(max_length=500, required=False, allow_blank=True)


class VersionView(serializers.ModelSerializer):
    template = serializers.CharField(source="template.name")
    status = serializers.SerializerMethodField()
    current = serializers.SerializerMethodField()

    class Meta:
        model = TemplateVersion
        fields = ["template", "number", "status", "current", "note", "default_locale", "variables_schema", "contents",
                  "created_at", "published_at"]

    def get_status(self, version) -> str:
        return "draft" if version.is_draft else "published"

    def get_current(self, version) -> bool:
        return version.template.current_version == version.number

from rest_framework import serializers

from core.serializers import StrictSerializer, choice
from core.vocabulary import Channel
from preferences.models import LOCALE
from templates_app.models import Template
from templates_app.rendering import HTML_FIELDS, TEXT_FIELDS, template_problem
from templates_app.variables import schema_error


class TemplateRequest(StrictSerializer):
    name = serializers.SlugField(max_length=100)
    channel = choice(Channel.choices, "channel")
    locale = serializers.CharField(max_length=35, required=False, default="en", validators=[LOCALE])
    subject = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")
    title = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")
    body = serializers.CharField(max_length=65536)
    html_body = serializers.CharField(max_length=262144, required=False, allow_blank=True, default="")
    variables_schema = serializers.DictField(required=False, default=dict)

    def validate_variables_schema(self, value):
        problem = schema_error(value)
        if problem:
            raise serializers.ValidationError(f"Not a valid JSON Schema: {problem}")
        return value

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

import re

from django.db import IntegrityError
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework import status as http
from rest_framework.response import Response
from rest_framework.views import APIView

from core.errors import ApiError
from core.openapi import error, results_of
from core.vocabulary import Channel
from templates_app import versions
from templates_app.models import MessageTemplate, Template, TemplateVersion
from templates_app.serializers import TemplateRequest, TemplateView, VersionEdit, VersionRequest, VersionView

SLUG = re.compile(r"\A[-a-zA-Z0-9_]+\Z")


class TemplateList(APIView):
    required_scopes = {"GET": "templates:read", "POST": "templates:write"}

    @extend_schema(
        responses=results_of("TemplateList", TemplateView), parameters=[OpenApiParameter("channel", str, enum=Channel.values)]
    )
    def get(self, request):
        """Every template variant, optionally for one channel."""
        rows = Template.objects.all()
        channel = request.query_params.get("channel")
        if channel:
            if channel not in Channel.values:
                raise ApiError(400, "invalid_choice", f"Unknown channel {channel!r}.", "channel")
            rows = rows.filter(channel=channel)
        return Response({"results": TemplateView(rows, many=True).data})

    @extend_schema(
        request=TemplateRequest,
        responses={201: TemplateView, 409: error("The template already has a variant for this channel and locale.")},
    )
    def post(self, request):
        """Add one channel × locale variant to a template (creating the template if new).

        Kept for simple cases: it creates a new version holding the current version's contents
        plus this one, and publishes it at once. `/templates/{name}/versions` gives full control.
        """
        serializer = TemplateRequest(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            template = versions.add_variant(serializer.validated_data)
        except IntegrityError:  # a concurrent request created the same template first
            raise ApiError(409, "template_exists", f"Template {serializer.validated_data['name']!r} is being changed; retry.",
                           "name") from None
        return Response(TemplateView(template).data, status=http.HTTP_201_CREATED)


class TemplateDetail(APIView):
    required_scopes = {"GET": "templates:read"}

    @extend_schema(
        responses=inline_serializer("TemplateVariants", {"name": serializers.CharField(), "variants": TemplateView(many=True)})
    )
    def get(self, request, name):
        """All variants of one template."""
        variants = list(Template.objects.filter(name=name))
        if not variants:
            raise ApiError(404, "not_found", f"No template named {name!r}.", "name")
        return Response({"name": name, "variants": TemplateView(variants, many=True).data})


def version_of(name: str, number: int) -> TemplateVersion:
    version = TemplateVersion.objects.select_related("template").filter(template__name=name, number=number).first()
    if version is None:
        raise ApiError(404, "not_found", f"Template {name!r} has no version {number}.", "number")
    return version


class VersionList(APIView):
    required_scopes = {"GET": "templates:read", "POST": "templates:write"}

    @extend_schema(responses=results_of("VersionList", VersionView))
    def get(self, request, name):
        """Every version of a template, newest first."""
        template = MessageTemplate.objects.filter(name=name).first()
        if template is None:
            raise ApiError(404, "not_found", f"No template named {name!r} with versions.", "name")
        return Response({"results": VersionView(template.versions.select_related("template"), many=True).data})

    @extend_schema(request=VersionRequest, responses={201: VersionView})
    def post(self, request, name):
        """Create a draft version (and the template, if new): given contents, or a copy of `copy_from`
        (default: the current version)."""
        if not SLUG.match(name) or len(name) > 100:
            raise ApiError(400, "invalid", "A template name is letters, digits, hyphens and underscores (100 at most).", "name")
        serializer = VersionRequest(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        version = versions.create_draft(name, **data)
        return Response(VersionView(version).data, status=http.HTTP_201_CREATED)


class VersionDetail(APIView):
    required_scopes = {"GET": "templates:read", "PATCH": "templates:write"}

    @extend_schema(responses=VersionView)
    def get(self, request, name, number):
        """One version, with all its contents."""
        return Response(VersionView(version_of(name, number)).data)

    @extend_schema(request=VersionEdit, responses={200: VersionView, 409: error("The version is published.")})
    def patch(self, request, name, number):
        """Edit a draft; a published version never changes."""
        serializer = VersionEdit(data=request.data)
        serializer.is_valid(raise_exception=True)
        version = versions.edit_draft(version_of(name, number), **serializer.validated_data)
        return Response(VersionView(version).data)


class VersionPublish(APIView):
    required_scopes = {"POST": "templates:write"}

    @extend_schema(request=None, responses={200: VersionView, 400: error("A content does not compile or render the schema's sample.")})
    def post(self, request, name, number):
        """Make this version current: new sends render it from now on (sends already routed keep theirs).
        Publishing an older version is a rollback."""
        version = versions.publish(name, number)
        return Response(VersionView(version_of(name, version.number)).data)

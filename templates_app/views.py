from django.db import IntegrityError, transaction
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework import status as http
from rest_framework.response import Response
from rest_framework.views import APIView

from core.errors import ApiError
from core.openapi import error, results_of
from core.vocabulary import Channel
from templates_app.models import Template
from templates_app.serializers import TemplateRequest, TemplateView


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
        """Create a template variant (one name, channel and locale)."""
        serializer = TemplateRequest(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            with transaction.atomic():
                template = Template.objects.create(**serializer.validated_data)
        except IntegrityError:
            data = serializer.validated_data
            raise ApiError(
                409, "template_exists",
                f"Template {data['name']!r} already has a {data['channel']} variant for {data['locale']!r}.", "name",
            ) from None
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

from django.conf import settings
from rest_framework import exceptions, serializers
from rest_framework.parsers import JSONParser

from core import safe_json


class CheckedJSONParser(JSONParser):
    """DRF's JSON parser, refusing what PostgreSQL cannot store and nesting it cannot walk (safe_json)."""

    def parse(self, stream, media_type=None, parser_context=None):
        parser_context = parser_context or {}
        encoding = parser_context.get("encoding", settings.DEFAULT_CHARSET)
        raw = stream.read() if stream is not None else b""
        try:
            return safe_json.parse(raw.decode(encoding))
        except UnicodeDecodeError as exc:
            raise exceptions.ParseError(f"Body is not {encoding}: {exc}") from None
        except safe_json.JsonRefused as exc:
            if exc.path:
                raise serializers.ValidationError({exc.path: [str(exc)]}) from None
            raise exceptions.ParseError(str(exc)) from None

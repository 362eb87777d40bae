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


class ItemwiseJSONParser(CheckedJSONParser):
    """For a bulk endpoint that judges each element of its list on its own (`list_key`): the elements
    are left unchecked for the view (`refusal`), so one bad element never refuses the others. A body
    nested too deep to parse whole is split into its elements, each parsed alone."""

    list_key = "notifications"

    def parse(self, stream, media_type=None, parser_context=None):
        parser_context = parser_context or {}
        encoding = parser_context.get("encoding", settings.DEFAULT_CHARSET)
        try:
            text = (stream.read() if stream is not None else b"").decode(encoding)
        except UnicodeDecodeError as exc:
            raise exceptions.ParseError(f"Body is not {encoding}: {exc}") from None
        try:
            value = safe_json.parse_unchecked(text)
        except safe_json.JsonRefused as exc:
            sources = safe_json.array_items(text, self.list_key)
            if sources is None:
                raise exceptions.ParseError(str(exc)) from None
            value = {self.list_key: [self._element(source) for source in sources]}
        if isinstance(value, dict):
            try:
                safe_json.check({key: child for key, child in value.items() if key != self.list_key})
            except safe_json.JsonRefused as exc:
                raise serializers.ValidationError({exc.path or "body": [str(exc)]}) from None
        return value

    @staticmethod
    def _element(source: str):
        try:
            return safe_json.parse_unchecked(source)
        except safe_json.JsonRefused as exc:
            return exc


def refusal(element) -> safe_json.JsonRefused | None:
    """Why an element left unchecked by ItemwiseJSONParser cannot be taken, or None."""
    if isinstance(element, safe_json.JsonRefused):
        return element
    try:
        safe_json.check(element)
    except safe_json.JsonRefused as exc:
        return exc
    return None

from rest_framework import serializers


class StrictSerializer(serializers.Serializer):
    """A serializer that names unknown fields instead of silently ignoring them (typos lose data).

    Checked in to_internal_value, so it holds for a nested StrictSerializer too.
    """

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            raise serializers.ValidationError(
                {"non_field_errors": [serializers.ErrorDetail("Body must be a JSON object.", code="invalid")]}
            )
        value = super().to_internal_value(data)
        unknown = sorted(set(data) - set(self.fields))
        if unknown:
            raise serializers.ValidationError({unknown[0]: serializers.ErrorDetail("Unknown field.", code="unknown_field")})
        return value


def choice(choices, label: str, **kwargs) -> serializers.ChoiceField:
    allowed = ", ".join(value for value, _ in choices)
    return serializers.ChoiceField(
        choices=choices,
        error_messages={"invalid_choice": f'Unknown {label} "{{input}}"; expected one of: {allowed}.'},
        **kwargs,
    )

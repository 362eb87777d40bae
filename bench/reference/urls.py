import json
import uuid

from django.db import connection
from django.urls import path
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView


class ItemRequest(serializers.Serializer):
    user_id = serializers.CharField(max_length=255)
    type = serializers.ChoiceField(["transaction", "security", "marketing", "reminder", "social"])
    template = serializers.CharField(max_length=100)
    variables = serializers.DictField(required=False)
    channels = serializers.ListField(child=serializers.CharField(), required=False)


class InsertItem(APIView):
    def post(self, request):
        item = ItemRequest(data=request.data)
        item.is_valid(raise_exception=True)
        item_id = uuid.uuid4()
        with connection.cursor() as cursor:
            cursor.execute("INSERT INTO bench_reference_item (id, payload, created_at) VALUES (%s, %s, now())",
                           [item_id, json.dumps(item.validated_data)])
        return Response({"id": str(item_id)}, status=202)


urlpatterns = [path("insert", InsertItem.as_view())]

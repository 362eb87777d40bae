from django.db import models

from core.vocabulary import Channel


class Template(models.Model):
    """Content for one channel in one locale; a notification names templates by `name`."""

    name = models.SlugField(max_length=100)
    channel = models.CharField(max_length=20, choices=Channel.choices)
    locale = models.CharField(max_length=35, default="en")
    subject = models.CharField(max_length=500, blank=True)
    title = models.CharField(max_length=500, blank=True)
    body = models.TextField()
    html_body = models.TextField(blank=True)
    variables_schema = models.JSONField(
        default=dict, blank=True, help_text="JSON Schema the notification's variables must satisfy."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["name", "channel", "locale"], name="template_unique_variant")
        ]
        ordering = ["name", "channel", "locale"]

    def __str__(self) -> str:
        return f"{self.name} ({self.channel}, {self.locale})"

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
        # What a template's current version holds per channel × locale (the template itself is MessageTemplate).
        verbose_name = "current content"
        verbose_name_plural = "current contents"

    def __str__(self) -> str:
        return f"{self.name} ({self.channel}, {self.locale})"


class MessageTemplate(models.Model):
    """A template as ops staff run it: numbered versions, one of them current.

    The current version's contents are what the `Template` rows hold (publishing.py writes them),
    so accepting and routing read one small table; a delivery names the version it was routed
    with and renders that one, whatever is published later.
    """

    name = models.SlugField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    category = models.CharField(max_length=50, blank=True, help_text="The notification type it is written for.")
    current_version = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "template"  # one name for templates in admin and the API

    def __str__(self) -> str:
        return self.name


class TemplateVersion(models.Model):
    """All of a template's channel × locale contents, its variables' schema and default locale.

    Editable while a draft; once published, immutable (rolling back publishes an older one).
    `contents` is a list of {channel, locale, subject, title, body, html_body}.
    """

    template = models.ForeignKey(MessageTemplate, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    contents = models.JSONField(default=list)
    variables_schema = models.JSONField(default=dict, blank=True)
    default_locale = models.CharField(max_length=35, default="en")
    note = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    published_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["template", "number"], name="template_version_number")]
        ordering = ["template", "-number"]

    @property
    def is_draft(self) -> bool:
        return self.published_at is None

    def __str__(self) -> str:
        return f"{self.template.name} v{self.number}{' (draft)' if self.is_draft else ''}"

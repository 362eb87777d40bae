"""The words every Herald app shares: channels, priorities, categories."""

from django.db import models


class Channel(models.TextChoices):
    EMAIL = "email"
    SMS = "sms"
    PUSH = "push"
    IN_APP = "in_app"
    WEBHOOK = "webhook"


class Priority(models.TextChoices):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"



class NotificationType(models.TextChoices):
    TRANSACTION = "transaction"
    SECURITY = "security"
    MARKETING = "marketing"
    REMINDER = "reminder"
    SOCIAL = "social"

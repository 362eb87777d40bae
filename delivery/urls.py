from django.urls import path

from delivery import views

urlpatterns = [
    path("webhooks/sendgrid", views.SendGridWebhook.as_view()),
    path("webhooks/twilio", views.TwilioWebhook.as_view()),
    path("dead-letters", views.DeadLetterList.as_view()),
    path("dead-letters/<int:dead_letter_id>/requeue", views.DeadLetterRequeue.as_view()),
]

from django.urls import path

from preferences import views

urlpatterns = [
    path("users/<str:user_id>", views.RecipientDetail.as_view()),
    path("users/<str:user_id>/export", views.RecipientExport.as_view()),
    path("users/<str:user_id>/preferences", views.PreferencesDetail.as_view()),
    path("users/<str:user_id>/devices", views.DeviceList.as_view()),
    path("users/<str:user_id>/devices/<path:token>", views.DeviceDetail.as_view()),
    # Linked from emails, so this URL must never change; the token is signed, no login needed.
    path("unsubscribe/<str:token>", views.unsubscribe_view, name="preferences-unsubscribe"),
]

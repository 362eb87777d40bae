from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from analytics import views as analytics
from config import dashboard, health, metrics_http
from delivery import views as delivery
from notifications import views as notifications
from templates_app import views as templates

api = "api/v1/"

urlpatterns = [
    path("health", health.live),
    path("health/ready", health.ready),
    path("metrics", metrics_http.metrics),
    path("admin/ops/", admin.site.admin_view(dashboard.ops), name="ops-dashboard"),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(authentication_classes=[], permission_classes=[]), name="schema"),
    path(
        "api/docs/",
        SpectacularSwaggerView.as_view(url_name="schema", authentication_classes=[], permission_classes=[]),
        name="docs",
    ),
    path("l/<str:delivery_token>/<str:link_token>", delivery.tracked_link, name="tracked-link"),
    path("o/<str:delivery_token>.gif", delivery.open_pixel, name="open-pixel"),
    path(api, include("preferences.urls")),
    path(api, include("delivery.urls")),
    path(api, include("campaigns.urls")),
    path(api, include("experiments.urls")),
    path(api, include("schedules.urls")),
    path("", include("inbox.urls")),
    path(api + "users/<str:user_id>/notifications", notifications.RecipientNotifications.as_view()),
    path(api + "templates", templates.TemplateList.as_view()),
    path(api + "templates/<str:name>", templates.TemplateDetail.as_view()),
    path(api + "templates/<str:name>/versions", templates.VersionList.as_view()),
    path(api + "templates/<str:name>/versions/<int:number>", templates.VersionDetail.as_view()),
    path(api + "templates/<str:name>/versions/<int:number>/publish", templates.VersionPublish.as_view()),
    path(api + "analytics/deliveries", analytics.DeliveryAnalytics.as_view()),
    path(api + "notifications", notifications.NotificationCreate.as_view()),
    path(api + "notifications/batch", notifications.NotificationBatch.as_view()),
    path(api + "notifications/<uuid:notification_id>", notifications.NotificationDetail.as_view()),
    path(api + "notifications/<uuid:notification_id>/cancel", notifications.NotificationCancel.as_view()),
    path(api + "notifications/<uuid:notification_id>/events", notifications.NotificationEvents.as_view()),
]

handler404 = "core.errors.json_404"
handler500 = "core.errors.json_500"

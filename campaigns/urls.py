from django.urls import path

from campaigns import views

urlpatterns = [
    path("campaigns", views.CampaignCreate.as_view()),
    path("campaigns/<uuid:campaign_id>", views.CampaignDetail.as_view()),
    path("campaigns/<uuid:campaign_id>/cancel", views.CampaignCancel.as_view()),
    path("topics/<str:key>", views.TopicDetail.as_view()),
    path("topics/<str:key>/subscribers", views.TopicSubscribers.as_view()),
    path("topics/<str:key>/subscribers/<str:user_id>", views.TopicSubscriber.as_view()),
]

from django.urls import path

from schedules import views

urlpatterns = [
    path("schedules", views.ScheduleList.as_view()),
    path("schedules/<uuid:schedule_id>", views.ScheduleDetail.as_view()),
    path("schedules/<uuid:schedule_id>/pause", views.SchedulePause.as_view()),
    path("schedules/<uuid:schedule_id>/resume", views.ScheduleResume.as_view()),
    path("schedules/<uuid:schedule_id>/cancel", views.ScheduleCancel.as_view()),
]

from django.urls import path

from experiments import views

urlpatterns = [
    path("experiments", views.ExperimentList.as_view()),
    path("experiments/<int:experiment_id>", views.ExperimentDetail.as_view()),
    path("experiments/<int:experiment_id>/start", views.ExperimentStart.as_view()),
    path("experiments/<int:experiment_id>/pause", views.ExperimentPause.as_view()),
    path("experiments/<int:experiment_id>/winner", views.ExperimentWinner.as_view()),
]

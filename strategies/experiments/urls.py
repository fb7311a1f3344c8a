"""URLs of experiments: the pages (mounted at the root) and the key-authenticated events API."""

from django.urls import path

from strategies.experiments import api, views

urlpatterns = [
    path("experiments/", views.experiments_overview, name="experiments_overview"),
    path("experiments/api/v1/events", api.experiment_events, name="experiment_events"),
    path("apps/<slug:slug>/experiments/new", views.experiment_create, name="experiment_create"),
    path("apps/<slug:slug>/experiments/power", views.experiment_power, name="experiment_power"),
    path("apps/<slug:slug>/experiments/<int:pk>/", views.experiment_detail, name="experiment_detail"),
    path("apps/<slug:slug>/experiments/<int:pk>/recompute", views.experiment_recompute, name="experiment_recompute"),
    path("apps/<slug:slug>/experiments/<int:pk>/start", views.experiment_start, name="experiment_start"),
    path("apps/<slug:slug>/experiments/<int:pk>/stop", views.experiment_stop, name="experiment_stop"),
    path("apps/<slug:slug>/experiments/<int:pk>/ship", views.experiment_ship, name="experiment_ship"),
]

from django.urls import path

from strategies.operations import views

urlpatterns = [
    path("releases/<int:pk>/promote", views.release_promote, name="release_promote"),
    path("apps/<slug:slug>/rollback", views.application_rollback, name="application_rollback"),
    path("apps/<slug:slug>/drift/check", views.application_drift_check, name="application_drift_check"),
    path("apps/<slug:slug>/drift/repair", views.application_drift_repair, name="application_drift_repair"),
    path("operations/<int:pk>/", views.operation_detail, name="operation_detail"),
    path("operations/<int:pk>/pause", views.operation_pause, name="operation_pause"),
    path("operations/<int:pk>/resume", views.operation_resume, name="operation_resume"),
    path("operations/<int:pk>/promote-now", views.operation_promote_now, name="operation_promote_now"),
    path("operations/<int:pk>/rollback", views.operation_rollback, name="operation_rollback"),
    path("operations/<int:pk>/ring-decision", views.operation_ring_decide, name="operation_ring_decide"),
    path("apps/<slug:slug>/rings/", views.application_rings, name="application_rings"),
    path("apps/<slug:slug>/rings/<int:pk>/edit", views.ring_edit, name="ring_edit"),
    path("apps/<slug:slug>/rings/<int:pk>/delete", views.ring_delete, name="ring_delete"),
]

from django.urls import path

from . import views

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("apps/new", views.application_create, name="application_create"),
    path("apps/<slug:slug>/", views.application_detail, name="application_detail"),
    path("apps/<slug:slug>/connect", views.application_connect, name="application_connect"),
    path("apps/<slug:slug>/refresh", views.application_refresh_slots, name="application_refresh_slots"),
    path("releases/", views.release_list, name="release_list"),
    path("releases/new", views.release_register, name="release_register"),
    path("releases/<int:pk>/", views.release_detail, name="release_detail"),
    path("releases/<int:pk>/action", views.release_action, name="release_action"),
    path("audit/", views.audit_list, name="audit_list"),
]

from django.urls import path

from portal.pages import views as pages
from releases.approvals import views as approval_views
from releases.catalog import views
from releases.history import delivery_views
from releases.history import views as history_views
from releases.intake import views as intake_views

urlpatterns = [
    path("", pages.dashboard, name="dashboard"),
    path("apps/new", views.application_create, name="application_create"),
    path("apps/<slug:slug>/", pages.application_detail, name="application_detail"),
    path("apps/<slug:slug>/connect", views.application_connect, name="application_connect"),
    path("apps/<slug:slug>/refresh", views.application_refresh_slots, name="application_refresh_slots"),
    path("apps/<slug:slug>/environments/<str:stage>/policy", approval_views.policy_edit, name="policy_edit"),
    path("releases/", history_views.release_list, name="release_list"),
    path("releases/compare", history_views.release_compare, name="release_compare"),
    path("releases/new", intake_views.release_register, name="release_register"),
    path("releases/<int:pk>/", pages.release_detail, name="release_detail"),
    path(
        "releases/<int:pk>/request-approval",
        approval_views.release_request_approval,
        name="release_request_approval",
    ),
    path("approvals/", pages.approval_inbox, name="approval_inbox"),
    path("approvals/<int:request_id>/", approval_views.approval_detail, name="approval_detail"),
    path("approvals/<int:request_id>/decide", approval_views.approval_decide, name="approval_decide"),
    path("approvals/<int:request_id>/gates", approval_views.approval_gates, name="approval_gates"),
    path(
        "approvals/<int:request_id>/override-freeze",
        approval_views.approval_override_freeze,
        name="approval_override_freeze",
    ),
    path("audit/", history_views.audit_list, name="audit_list"),
    path("audit/export.csv", history_views.audit_export_csv, name="audit_export_csv"),
    path("audit/export.json", history_views.audit_export_json, name="audit_export_json"),
    path("metrics/", delivery_views.delivery_metrics_page, name="delivery_metrics"),
]

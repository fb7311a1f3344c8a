"""URLs of feature flags: the pages (mounted at the root) and the key-authenticated APIs."""

from django.urls import path

from strategies.flags import ofrep, safety_views, views

urlpatterns = [
    path("flags/", views.flags_overview, name="flags_overview"),
    path("apps/<slug:slug>/flags/", views.application_flags, name="application_flags"),
    path("apps/<slug:slug>/flags/new", views.flag_create, name="flag_create"),
    path("apps/<slug:slug>/flags/<int:pk>/", views.flag_detail, name="flag_detail"),
    path("apps/<slug:slug>/flags/<int:pk>/edit", views.flag_edit, name="flag_edit"),
    path("apps/<slug:slug>/flags/<int:pk>/rules/add", views.flag_rule_add, name="flag_rule_add"),
    path("apps/<slug:slug>/flags/<int:pk>/rules/remove", views.flag_rule_remove, name="flag_rule_remove"),
    path("apps/<slug:slug>/flags/<int:pk>/kill", views.flag_kill, name="flag_kill"),
    path("apps/<slug:slug>/flags/<int:pk>/lifecycle", views.flag_lifecycle, name="flag_lifecycle"),
    path("apps/<slug:slug>/flags/<int:pk>/launch", views.launch_create, name="launch_create"),
    path("apps/<slug:slug>/segments/new", views.segment_edit, name="segment_create"),
    path("apps/<slug:slug>/segments/<int:pk>/edit", views.segment_edit, name="segment_edit"),
    path("apps/<slug:slug>/segments/<int:pk>/delete", views.segment_delete, name="segment_delete"),
    path("apps/<slug:slug>/launches/<int:pk>/", views.launch_detail, name="launch_detail"),
    path("apps/<slug:slug>/launches/<int:pk>/widen", views.launch_widen, name="launch_widen"),
    path("apps/<slug:slug>/launches/<int:pk>/rollout", views.launch_rollout, name="launch_rollout"),
    path("apps/<slug:slug>/launches/<int:pk>/kill", views.launch_kill, name="launch_kill"),
    path("apps/<slug:slug>/flags/<int:pk>/schedule", safety_views.flag_schedule_create, name="flag_schedule_create"),
    path(
        "apps/<slug:slug>/flag-schedules/<int:pk>/cancel",
        safety_views.flag_schedule_cancel,
        name="flag_schedule_cancel",
    ),
    path("apps/<slug:slug>/flag-changes/<int:pk>/decide", safety_views.flag_change_decide, name="flag_change_decide"),
    path(
        "apps/<slug:slug>/flags/environments/<int:environment_id>/approval",
        safety_views.flag_approval_toggle,
        name="flag_approval_toggle",
    ),
    path("releases/<int:pk>/flags/declare", safety_views.release_flag_declare, name="release_flag_declare"),
    path("releases/<int:pk>/flags/remove", safety_views.release_flag_remove, name="release_flag_remove"),
    path("apps/<slug:slug>/flag-keys/", views.flag_api_keys, name="flag_api_keys"),
    path("apps/<slug:slug>/flag-keys/<int:pk>/revoke", views.flag_api_key_revoke, name="flag_api_key_revoke"),
    # Authenticated with an environment's flag API key, not a session.
    path("ofrep/v1/evaluate/flags/<str:key>", ofrep.ofrep_evaluate_flag, name="ofrep_evaluate_flag"),
    path("ofrep/v1/evaluate/flags", ofrep.ofrep_evaluate_flags, name="ofrep_evaluate_flags"),
    path("ofrep/v1/configuration", ofrep.ofrep_configuration, name="ofrep_configuration"),
    path("flags/sync/<int:environment_id>/flags.json", ofrep.flagd_sync, name="flagd_sync"),
    path("flags/api/v1/environments/<int:environment_id>/events", ofrep.flag_events, name="flag_events"),
]

"""URLs of the simulator: its slots' public pages (mounted under sim/) and its fault-injection page and API."""

from django.urls import path

from releases.catalog.simulator import views

# Mounted at /sim/ by portal/urls.py: the simulated sites, as their visitors see them.
urlpatterns = [
    path("<slug:slug>/", views.sim_routed, name="sim_routed"),
    path("<slug:slug>/<slug:slot>/", views.sim_slot, name="sim_slot"),
    path("<slug:slug>/<slug:slot>/healthz", views.sim_slot_healthz, name="sim_slot_healthz"),
]

# Mounted at the root: Slipway's own page and API for the simulated world.
portal_urlpatterns = [
    path("apps/<slug:slug>/simulator/", views.application_simulator, name="application_simulator"),
    path(
        "api/v1/applications/<slug:slug>/simulator",
        views.api_application_simulator,
        name="api_application_simulator",
    ),
]

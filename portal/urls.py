from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from portal import views
from portal.api import urls as api_urls
from portal.signon import oidc
from releases.catalog.simulator import urls as simulator_urls

urlpatterns = [
    path("login/", oidc.SignInView.as_view(), name="login"),  # the SSO button above the local form
    path("oidc/", include(oidc.urlpatterns)),  # single sign-on (portal/signon/oidc.py)
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("metrics", views.metrics, name="prometheus_metrics"),
    path("admin/", admin.site.urls),
    path("django-rq/", include("django_rq.urls")),
    path("sim/", include("releases.catalog.simulator.urls")),
    path("api/v1/", include(api_urls)),
    path("", include(api_urls.account_urlpatterns)),
    path("", include(simulator_urls.portal_urlpatterns)),
    path("", include("portal.pages.urls")),
    path("", include("strategies.operations.urls")),
    path("", include("strategies.flags.urls")),
    path("", include("strategies.experiments.urls")),
    path("", include("releases.webhooks.urls")),
]

# Under /api/ a missing page is a problem document, like every other answer of the API.
handler404 = "portal.api.views.not_found"

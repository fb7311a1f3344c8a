from django.urls import path

from releases.webhooks import views

urlpatterns = [
    path("apps/<slug:slug>/webhooks/", views.webhook_list, name="webhook_list"),
    path("apps/<slug:slug>/webhooks/new", views.webhook_create, name="webhook_create"),
    path("apps/<slug:slug>/webhooks/<int:pk>/", views.webhook_deliveries, name="webhook_deliveries"),
    path("apps/<slug:slug>/webhooks/<int:pk>/toggle", views.webhook_toggle, name="webhook_toggle"),
    path("apps/<slug:slug>/webhooks/<int:pk>/rotate", views.webhook_rotate, name="webhook_rotate"),
    path("apps/<slug:slug>/webhooks/<int:pk>/delete", views.webhook_delete, name="webhook_delete"),
    path("apps/<slug:slug>/webhook-deliveries/<int:pk>/redeliver", views.webhook_redeliver, name="webhook_redeliver"),
]

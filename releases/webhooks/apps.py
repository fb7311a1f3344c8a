from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "releases.webhooks"
    label = "webhooks"
    verbose_name = "Webhooks"

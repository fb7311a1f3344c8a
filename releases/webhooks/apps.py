from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "releases.webhooks"
    label = "webhooks"
    verbose_name = "Webhooks"

    def ready(self) -> None:
        from portal.core import events
        from releases.webhooks.services import webhook_emit

        events.subscribe(webhook_emit)  # every published domain event may be a webhook delivery

from django.apps import AppConfig


class StrategiesConfig(AppConfig):
    name = "strategies"
    verbose_name = "Deployment strategies and feature flags"

    def ready(self) -> None:
        from strategies.flags import freshness

        freshness.connect_signals()

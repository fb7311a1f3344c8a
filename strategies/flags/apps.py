from django.apps import AppConfig


class FlagsConfig(AppConfig):
    name = "strategies.flags"
    label = "flags"
    verbose_name = "Feature flags"

    def ready(self) -> None:
        from strategies.flags import freshness

        freshness.connect_signals()

from django.apps import AppConfig


class StrategiesConfig(AppConfig):
    """The app label flags and experiments had before they became apps of their own.

    It has no models; it stays installed because its migrations are the history of their tables
    (`strategies_*`) and the last of them hands those models over (docs/architecture.md, "Moving a model").
    """

    name = "strategies"
    verbose_name = "Deployment strategies (migration history)"

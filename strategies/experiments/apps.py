from django.apps import AppConfig


class ExperimentsConfig(AppConfig):
    name = "strategies.experiments"
    label = "experiments"
    verbose_name = "Experiments"

from django.apps import AppConfig


class OperationsConfig(AppConfig):
    name = "strategies.operations"
    label = "operations"
    verbose_name = "Operations"

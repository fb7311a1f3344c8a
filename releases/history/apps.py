from django.apps import AppConfig


class HistoryConfig(AppConfig):
    name = "releases.history"
    label = "history"
    verbose_name = "History and delivery metrics"

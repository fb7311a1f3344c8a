from django.apps import AppConfig


class ReleasesConfig(AppConfig):
    name = "releases.catalog"
    # The label the app has always had: its tables (releases_*) and migration history keep their names.
    label = "releases"
    verbose_name = "Applications and releases"

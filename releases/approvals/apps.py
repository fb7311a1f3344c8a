from django.apps import AppConfig


class ApprovalsConfig(AppConfig):
    name = "releases.approvals"
    label = "approvals"
    verbose_name = "Approvals"

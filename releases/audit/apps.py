from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "releases.audit"
    label = "audit"
    verbose_name = "Audit trail"

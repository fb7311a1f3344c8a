from django.apps import AppConfig


class PortalConfig(AppConfig):
    name = "portal"
    verbose_name = "Slipway portal"

    def ready(self) -> None:
        from portal.core.redaction import install_log_redaction

        install_log_redaction()  # every log record of the process is redacted as it is made

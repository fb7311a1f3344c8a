from django.apps import AppConfig


class PortalConfig(AppConfig):
    name = "portal"
    verbose_name = "Slipway portal"

    def ready(self) -> None:
        from portal.core.redaction import install_log_redaction

        install_log_redaction()  # every log record of the process is redacted as it is made

        from portal.core.pages import page_provide
        from portal.pages.views import release_page

        page_provide("release", release_page)  # the approval decision re-renders it on a form error

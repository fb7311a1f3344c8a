from django.apps import AppConfig


class SignonConfig(AppConfig):
    name = "portal.signon"
    label = "signon"
    verbose_name = "Sign-on"

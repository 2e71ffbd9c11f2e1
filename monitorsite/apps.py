from django.apps import AppConfig


class MonitorsiteConfig(AppConfig):
    """The project package as an app, for its management commands (no models)."""

    name = "monitorsite"
    verbose_name = "Monitor site"

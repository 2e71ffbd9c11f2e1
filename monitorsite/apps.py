from django.apps import AppConfig, apps
from django.db.models.signals import post_migrate


class MonitorsiteConfig(AppConfig):
    """The project package as an app, for its management commands (no models)."""

    name = "monitorsite"
    verbose_name = "Monitor site"

    def ready(self) -> None:
        from monitorsite.grafana import create_market_views

        # After the trades tables exist, on every migrate (each start runs one).
        post_migrate.connect(
            create_market_views, sender=apps.get_app_config("trades"), dispatch_uid="monitorsite.market_views"
        )

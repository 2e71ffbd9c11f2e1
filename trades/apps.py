from django.apps import AppConfig


class TradesConfig(AppConfig):
    name = "trades"
    verbose_name = "Trading"

    def ready(self) -> None:
        # Registers the OpenAPI description of the Bearer key authentication.
        from trades import schema  # noqa: F401

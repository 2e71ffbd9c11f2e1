from django.apps import AppConfig
from django.db.models.signals import post_delete, post_save


class TradesConfig(AppConfig):
    name = "trades"
    verbose_name = "Trading"

    def ready(self) -> None:
        # Registers the OpenAPI description of the Bearer key authentication.
        from trades import schema  # noqa: F401
        from trades.auth import VERIFIED_KEYS
        from trades.models import Bot, BotKey

        # A key or a bot saved or deleted in this process: its keys are looked up again at once.
        for model in (Bot, BotKey):
            for signal in (post_save, post_delete):
                signal.connect(
                    VERIFIED_KEYS.clear, sender=model, dispatch_uid=f"verified-keys-{model.__name__}"
                )

from typing import Any

from django.apps import AppConfig
from django.core import checks
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

        checks.register(market_calendar_check)


def market_calendar_check(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """MARKET_CALENDAR names a calendar (checked as a bot's is)."""
    from django.conf import settings
    from django.core.exceptions import ValidationError

    from trades.market import validate_calendar_code

    try:
        validate_calendar_code(settings.MARKET_CALENDAR)
    except ValidationError as exc:
        return [checks.Error(f"MARKET_CALENDAR: {exc.messages[0]}", id="trades.E001")]
    return []

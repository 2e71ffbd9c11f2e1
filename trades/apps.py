from typing import Any

from django.apps import AppConfig
from django.core import checks


class TradesConfig(AppConfig):
    name = "trades"
    verbose_name = "Trading"

    def ready(self) -> None:
        # Registers the OpenAPI description of the Bearer key authentication.
        from trades import schema  # noqa: F401

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

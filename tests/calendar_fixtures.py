"""Three bots on three calendars (New York's exchange, London's, 24/7 in Tokyo's zone): the
calendar tests of the rules and the summaries share them."""

from __future__ import annotations

import pytest

from trades.models import Bot


@pytest.fixture
def bots() -> dict[str, Bot]:
    return {
        "new_york": Bot.objects.create(name="new_york", calendar="XNYS"),
        "london": Bot.objects.create(name="london", calendar="XLON"),
        "crypto": Bot.objects.create(name="crypto", calendar="24/7", timezone="Asia/Tokyo"),
    }

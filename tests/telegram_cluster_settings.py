"""A task cluster under test with the Telegram commands' reader on short polls and a short lease,
so a killed reader is replaced within seconds."""

from monitorsite.settings import *  # noqa: F403

TELEGRAM_POLL_SECONDS = 2
TELEGRAM_LEASE_SECONDS = 6

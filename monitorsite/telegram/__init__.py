"""Commands from the operator's phone: a Telegram bot that answers the configured chat's users."""

"""What a trading bot imports to report to the monitoring site (no Django here)."""

from monitor_client.client import Monitor

__all__ = ["Monitor"]

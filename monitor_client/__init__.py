"""What a trading bot imports to report to the monitoring site; needs no Django."""

from monitor_client.client import Monitor
from monitor_client.logsetup import setup_logging

__all__ = ["Monitor", "setup_logging"]

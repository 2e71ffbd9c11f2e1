"""What a trading bot imports to report to the monitoring site; needs no Django."""

from monitor_client.logsetup import setup_logging

__all__ = ["setup_logging"]

"""A task cluster under test: a short send lease, so a killed worker's alert is reclaimed soon."""

from monitorsite.settings import *  # noqa: F403

ALERT_SEND_LEASE_SECONDS = 8
ALERT_HTTP_TIMEOUT = 3.0

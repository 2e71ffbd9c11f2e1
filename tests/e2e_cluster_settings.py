"""The task cluster of the end-to-end Discord outage test.

One HTTP request per delivery run instead of three (0.5 + 1 + 2 s of backoff per
alert): with Discord down, a run then fails each alert at once and leaves it for
the retry 30 s later, as it does after its third request with the defaults.
"""

from monitorsite.settings import *  # noqa: F403

ALERT_HTTP_ATTEMPTS = 1

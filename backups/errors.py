"""The backups family's one error type.

A module of its own, free of Django models, so that ``backups.site_lock`` can be
imported before Django is set up: the web server's main process takes the
running-site lock and then forks its web processes, which set Django up each for
themselves (``monitorsite/serve.py``).
"""


class BackupError(Exception):
    """A backup or restore step failed; the message is one line a user can act on."""

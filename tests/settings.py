"""The site's settings for the test run (pytest-django loads this module).

The tests run without ``prepare_site``: the key comes from here and the test
database's folder is made here, where a side effect on import is harmless.
"""

import os
from pathlib import Path

os.environ.setdefault("DJANGO_SECRET_KEY", "test-secret-key")

if os.environ.get("REDIS_URL"):
    # Each pytest-xdist worker queues its in-process tasks in a Redis database of its own,
    # so one worker emptying its queue between tests never takes another's tasks.
    from urllib.parse import urlsplit, urlunsplit

    from tests.harness import own_redis_database

    os.environ["REDIS_URL"] = urlunsplit(
        urlsplit(os.environ["REDIS_URL"])._replace(path=f"/{own_redis_database()}")
    )

from monitorsite.settings import *  # noqa: F403
from monitorsite.settings import DATABASES, STATIC_ROOT

if "NAME" in DATABASES["default"]["TEST"]:  # SQLite; on PostgreSQL pytest-django makes test_<name>
    Path(DATABASES["default"]["TEST"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
# What prepare_site would make; WhiteNoise warns on every start without it.
Path(STATIC_ROOT).mkdir(parents=True, exist_ok=True)

# PBKDF2's million rounds cost every admin user the tests make and log in about a third of a
# second; what is tested is the admin, not the hash.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

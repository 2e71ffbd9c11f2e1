"""The site's settings for the test run (pytest-django loads this module).

The tests run without ``prepare_site``: the key comes from here and the test
database's folder is made here, where a side effect on import is harmless.
"""

import os
from pathlib import Path

from tests.harness import TEST_SESSIONS_DIR

os.environ.setdefault("DJANGO_SECRET_KEY", "test-secret-key")

# Each test process (one per pytest-xdist worker) keeps what the site writes in its data folder
# (the SQLite database, a snapshot's work folder, logs, the local provider's backups) in a folder
# of its own: two workers backing up at once saw each other's work folders in the shared one.
OWN_DATA = Path(__file__).resolve().parent.parent / "data" / "tests" / str(os.getpid())
os.environ["DATABASE_PATH"] = str(OWN_DATA / "trades.db")
os.environ["LOG_DIR"] = str(OWN_DATA / "logs")
os.environ["LOCAL_STORAGE_PATH"] = str(OWN_DATA / "backups")
os.environ["SESSIONS_DIR"] = str(TEST_SESSIONS_DIR)  # shared with the sites under test

if os.environ.get("REDIS_URL"):
    # Each pytest-xdist worker queues its in-process tasks in a Redis database of its own,
    # so one worker emptying its queue between tests never takes another's tasks.
    from urllib.parse import urlsplit, urlunsplit

    from tests.harness import own_redis_database

    os.environ["REDIS_URL"] = urlunsplit(
        urlsplit(os.environ["REDIS_URL"])._replace(path=f"/{own_redis_database()}")
    )

from monitorsite.settings import *  # noqa: E402, F403 (read the environment set above)
from monitorsite.settings import DATABASES, STATIC_ROOT  # noqa: E402

if "NAME" in DATABASES["default"]["TEST"]:  # SQLite; on PostgreSQL pytest-django makes test_<name>
    DATABASES["default"]["TEST"]["NAME"] = str(OWN_DATA / "test_trades.db")
OWN_DATA.mkdir(parents=True, exist_ok=True)
# What prepare_site would make; WhiteNoise warns on every start without it.
Path(STATIC_ROOT).mkdir(parents=True, exist_ok=True)

# PBKDF2's million rounds cost every admin user the tests make and log in about a third of a
# second; what is tested is the admin, not the hash.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

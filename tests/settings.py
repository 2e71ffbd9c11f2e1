"""The site's settings for the test run (pytest-django loads this module).

The tests run without ``prepare_site``: the key comes from here and the test
database's folder is made here, where a side effect on import is harmless.
"""

import os
from pathlib import Path

os.environ.setdefault("DJANGO_SECRET_KEY", "test-secret-key")

from monitorsite.settings import *  # noqa: F403
from monitorsite.settings import DATABASES, STATIC_ROOT

if "NAME" in DATABASES["default"]["TEST"]:  # SQLite; on PostgreSQL pytest-django makes test_<name>
    Path(DATABASES["default"]["TEST"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
# What prepare_site would make; WhiteNoise warns on every start without it.
Path(STATIC_ROOT).mkdir(parents=True, exist_ok=True)

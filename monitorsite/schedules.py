"""Every periodic task of the site, declared in one place.

``manage.py setup_schedules`` registers these with django-q2; it is safe to run
again and again (on every deploy): it creates what is missing, updates what
changed and removes schedules of ours that are no longer declared.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Periodic:
    name: str
    func: str
    minutes: int
    kwargs: dict[str, Any] = field(default_factory=dict)


# Names are prefixed so that setup_schedules never touches schedules an
# operator added by hand in the admin.
PREFIX = "monitorsite:"

SCHEDULES: tuple[Periodic, ...] = (
    Periodic(name=f"{PREFIX}cluster-heartbeat", func="monitorsite.tasks.cluster_heartbeat", minutes=1),
)

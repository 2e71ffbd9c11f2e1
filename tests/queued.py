"""The task queue as the tests see it, on either broker: django-q2's ORM table, or Redis.

``queued()`` lists what waits in the queue in order, each task with ``func()`` and
``args()`` as django-q2's ``OrmQ`` rows have them; ``clear_queue()`` empties it, as a
broker wiped or a worker killed while dequeuing would.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django_q.brokers import get_broker
from django_q.models import OrmQ
from django_q.signing import SignedPackage


@dataclass(frozen=True)
class QueuedTask:
    package: dict[str, Any]

    def func(self) -> Any:
        return self.package["func"]

    def args(self) -> tuple[Any, ...]:
        return tuple(self.package["args"])


def on_redis() -> bool:
    return bool(settings.Q_CLUSTER.get("redis"))


def queued() -> list[QueuedTask]:
    if on_redis():
        broker = get_broker()
        payloads = broker.connection.lrange(broker.list_key, 0, -1)
    else:
        payloads = [row.payload for row in OrmQ.objects.order_by("id")]
    return [QueuedTask(SignedPackage.loads(payload)) for payload in payloads]


def clear_queue() -> None:
    if on_redis():
        get_broker().delete_queue()
    else:
        OrmQ.objects.all().delete()

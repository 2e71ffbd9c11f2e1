"""The site's own periodic tasks (each app declares its own in ``<app>/schedules.py``)."""

SCHEDULES = [
    {"name": "cluster-heartbeat", "func": "monitorsite.tasks.cluster_heartbeat", "minutes": 1},
]

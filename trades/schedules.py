"""Periodic work of the trades app (collected by monitorsite's schedule registry)."""

SCHEDULES = [
    # All of a bot's state snapshots for two days, one per quarter hour for 90 days (trades.thinning).
    {"name": "snapshots-thin", "func": "trades.tasks.thin_snapshots", "minutes": 60},
]

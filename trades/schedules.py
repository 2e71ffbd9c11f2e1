"""Periodic work of the trades app (collected by monitorsite's schedule registry)."""

SCHEDULES = [
    # All of a bot's state snapshots for two days, one per quarter hour for 90 days (trades.thinning).
    {"name": "snapshots-thin", "func": "trades.tasks.thin_snapshots", "minutes": 60},
    # Each bot's fills and realized P&L per ended hour, the anomaly rules' history (trades.hours).
    {"name": "hour-figures", "func": "trades.tasks.record_hours", "minutes": 5},
]

"""Periodic work of the alerts app (collected by monitorsite's schedule registry)."""

SCHEDULES = [
    # Bot stopped and today's daily thresholds; also sends what waits in the outbox
    # (retries, rate-limit digests, alerts left behind by a stopped worker).
    {"name": "alerts-evaluate", "func": "alerts.tasks.evaluate_schedule", "minutes": 1},
    # Checks each minute whether the summary time (set in the admin) has come on a trading day.
    {"name": "alerts-daily-summary", "func": "alerts.tasks.send_daily_summary_if_due", "minutes": 1},
    # Checks each minute whether the week's last trading day has reached the weekly report's time.
    {"name": "alerts-weekly-report", "func": "alerts.tasks.send_weekly_report_if_due", "minutes": 1},
]

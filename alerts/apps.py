from django.apps import AppConfig


class AlertsConfig(AppConfig):
    name = "alerts"
    verbose_name = "Alerts"

    def ready(self) -> None:
        from django.db.models.signals import post_save

        from alerts import receivers
        from trades import signals
        from trades.models import BotEvent

        signals.trades_recorded.connect(receivers.on_trades_recorded, dispatch_uid="alerts.trades_recorded")
        signals.state_reported.connect(receivers.on_state_reported, dispatch_uid="alerts.state_reported")
        signals.site_alert.connect(receivers.on_site_alert, dispatch_uid="alerts.site_alert")
        signals.daily_summary_send.connect(receivers.on_summary_requested, dispatch_uid="alerts.summary")
        signals.period_summary_send.connect(
            receivers.on_period_summary_requested, dispatch_uid="alerts.period_summary"
        )
        post_save.connect(receivers.on_bot_event, sender=BotEvent, dispatch_uid="alerts.bot_event")

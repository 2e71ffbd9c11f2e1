from django.urls import path

from trades import views

urlpatterns = [
    path("trades/", views.TradesView.as_view(), name="trades"),
    path("summary/daily/", views.DailySummaryView.as_view(), name="daily-summary"),
    path("summary/period/", views.PeriodSummaryView.as_view(), name="period-summary"),
    path("heartbeat/", views.HeartbeatView.as_view(), name="heartbeat"),
    path("events/", views.EventsView.as_view(), name="events"),
    path("positions/", views.PositionsView.as_view(), name="positions"),
]

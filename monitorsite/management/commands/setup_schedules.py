from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone
from django_q.models import Schedule

from monitorsite.registry import SCHEDULE_PREFIX, ScheduleSpec, declared_schedules

TRADING_DAY_WRAPPER = "monitorsite.tasks.run_on_trading_day"


def schedule_fields(spec: ScheduleSpec) -> dict[str, Any]:
    """The django-q2 ``Schedule`` columns that carry out ``spec``."""
    minutes = spec.interval_minutes()
    fields: dict[str, Any] = {
        "func": spec.func,
        "args": None,
        "kwargs": repr(spec.kwargs) if spec.kwargs else None,
        "repeats": -1,
        "schedule_type": Schedule.MINUTES if minutes else Schedule.CRON,
        "minutes": minutes,
        "cron": None if minutes else spec.cron,
    }
    if spec.trading_days_only:
        fields.update(func=TRADING_DAY_WRAPPER, args=repr((spec.func,)))
    return fields


def describe(spec: ScheduleSpec) -> str:
    minutes = spec.interval_minutes()
    when = f"every {minutes} min" if minutes else f"cron {spec.cron!r} market time"
    return when + (", trading days only" if spec.trading_days_only else "")


class Command(BaseCommand):
    help = "Register every periodic task with the task cluster. Safe to run again."

    def handle(self, *args: Any, **options: Any) -> None:
        specs = [spec for spec in declared_schedules() if spec.enabled()]
        declared = {spec.registered_name for spec in specs}
        with transaction.atomic():
            for spec in specs:
                name, fields = spec.registered_name, schedule_fields(spec)
                schedule = Schedule.objects.filter(name=name).first()
                if schedule is None:
                    schedule = Schedule(name=name, **fields)
                    if fields["schedule_type"] == Schedule.MINUTES:
                        schedule.next_run = timezone.now()
                    # For a cron schedule, django-q2 computes the first run on save.
                    schedule.save()
                    self.stdout.write(f"created  {name} ({describe(spec)})")
                elif any(getattr(schedule, key) != value for key, value in fields.items()):
                    for key, value in fields.items():
                        setattr(schedule, key, value)
                    if fields["schedule_type"] == Schedule.CRON:
                        schedule.next_run = schedule.calculate_next_run(timezone.now())
                    schedule.save()
                    self.stdout.write(f"updated  {name} ({describe(spec)})")
                else:
                    self.stdout.write(f"ok       {name}")
            stale = Schedule.objects.filter(name__startswith=SCHEDULE_PREFIX).exclude(name__in=declared)
            for name in stale.values_list("name", flat=True):
                self.stdout.write(f"removed  {name}")
            stale.delete()

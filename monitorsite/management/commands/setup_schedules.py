from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone
from django_q.models import Schedule

from monitorsite.schedules import PREFIX, SCHEDULES


class Command(BaseCommand):
    help = "Register every periodic task with the task cluster. Safe to run again."

    def handle(self, *args: Any, **options: Any) -> None:
        declared = {periodic.name for periodic in SCHEDULES}
        with transaction.atomic():
            for periodic in SCHEDULES:
                fields = {
                    "func": periodic.func,
                    "schedule_type": Schedule.MINUTES,
                    "minutes": periodic.minutes,
                    "kwargs": repr(periodic.kwargs) if periodic.kwargs else None,
                    "repeats": -1,
                }
                schedule = Schedule.objects.filter(name=periodic.name).first()
                if schedule is None:
                    Schedule.objects.create(name=periodic.name, next_run=timezone.now(), **fields)
                    self.stdout.write(f"created  {periodic.name} (every {periodic.minutes} min)")
                elif any(getattr(schedule, key) != value for key, value in fields.items()):
                    Schedule.objects.filter(pk=schedule.pk).update(**fields)
                    self.stdout.write(f"updated  {periodic.name} (every {periodic.minutes} min)")
                else:
                    self.stdout.write(f"ok       {periodic.name}")
            stale = Schedule.objects.filter(name__startswith=PREFIX).exclude(name__in=declared)
            for name in stale.values_list("name", flat=True):
                self.stdout.write(f"removed  {name}")
            stale.delete()

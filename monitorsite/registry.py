"""What each installed app offers the site: health checks and periodic tasks.

Apps never import ``monitorsite``; they declare plain data in modules found by
convention, and this module collects it:

- ``<app>/health.py``: ``CHECKS = {"name": {"check": "dotted.path", "vital": bool}}``.
  A check takes no arguments and returns a JSON-able dict with ``"ok"`` and,
  when not ok, a one-line ``"reason"``. A failing vital check makes the site
  unavailable (503, so a container health check restarts it); a failing
  non-vital one (a late backup, a backlog) only degrades it (200).
- ``<app>/schedules.py``: ``SCHEDULES = [{...}]``, see ``ScheduleSpec``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from importlib import import_module
from importlib.util import find_spec
from types import ModuleType
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

# Names of our schedules in django-q2 start with this, so that setup_schedules
# never touches schedules an operator added by hand in the admin.
SCHEDULE_PREFIX = "monitorsite:"


def app_modules(module_name: str) -> list[tuple[str, ModuleType]]:
    """``(app label, module)`` for every installed app that has ``<app>.<module_name>``."""
    found = []
    for config in apps.get_app_configs():
        dotted = f"{config.name}.{module_name}"
        if find_spec(config.name) is not None and find_spec(dotted) is not None:
            found.append((config.label, import_module(dotted)))
    return found


# --- health -----------------------------------------------------------------


@dataclass(frozen=True)
class HealthCheck:
    name: str
    check: Callable[[], dict[str, Any]]
    vital: bool


@cache
def health_checks() -> tuple[HealthCheck, ...]:
    checks: dict[str, HealthCheck] = {}
    for label, module in app_modules("health"):
        for name, declared in getattr(module, "CHECKS", {}).items():
            unknown = set(declared) - {"check", "vital"}
            if unknown or "check" not in declared or name in checks:
                raise ImproperlyConfigured(f"{label}.health.CHECKS[{name!r}] is malformed or declared twice")
            target = declared["check"]
            func = import_string(target) if isinstance(target, str) else target
            checks[name] = HealthCheck(name, func, bool(declared.get("vital", False)))
    # Vital checks first: they are what a reader of the answer looks at first.
    return tuple(sorted(checks.values(), key=lambda c: not c.vital))


def run_health_checks() -> tuple[str, dict[str, dict[str, Any]]]:
    """The site's state (``ok``, ``degraded`` or ``unavailable``) and every component's report."""
    components: dict[str, dict[str, Any]] = {}
    state = "ok"
    for check in health_checks():
        try:
            result = dict(check.check())
        except Exception as exc:  # a broken check is a failing component, never a 500
            result = {"ok": False, "reason": f"check failed: {type(exc).__name__}"}
        result["ok"] = bool(result.get("ok"))
        result["vital"] = check.vital
        components[check.name] = result
        if not result["ok"]:
            state = "unavailable" if check.vital else ("degraded" if state == "ok" else state)
    return state, components


# --- schedules --------------------------------------------------------------


@dataclass(frozen=True)
class ScheduleSpec:
    """One periodic task as an app declares it.

    Exactly one of ``seconds``, ``minutes`` (an int, or the name of a setting
    holding one) or ``cron`` (five fields, in ``MARKET_TIMEZONE``). With
    ``trading_days_only`` the task is skipped, when it fires, on weekends and
    exchange holidays. With ``enabled_by`` (a setting name) the schedule exists
    only while that setting is true.
    """

    name: str
    func: str
    seconds: int | str | None = None
    minutes: int | str | None = None
    cron: str | None = None
    trading_days_only: bool = False
    enabled_by: str | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def registered_name(self) -> str:
        return f"{SCHEDULE_PREFIX}{self.name}"

    def enabled(self) -> bool:
        return self.enabled_by is None or bool(_setting(self.enabled_by, self.name))

    def interval_minutes(self) -> int | None:
        """The interval in whole minutes (django-q2's finest unit), seconds rounded up; None for cron."""
        if self.minutes is not None:
            return max(1, int(_value(self.minutes, self.name)))
        if self.seconds is not None:
            return max(1, math.ceil(int(_value(self.seconds, self.name)) / 60))
        return None


def _setting(name: str, schedule: str) -> Any:
    if not hasattr(settings, name):
        raise ImproperlyConfigured(f"schedule {schedule!r} names the setting {name}, which does not exist")
    return getattr(settings, name)


def _value(value: int | str, schedule: str) -> int:
    return int(_setting(value, schedule)) if isinstance(value, str) else value


def declared_schedules() -> list[ScheduleSpec]:
    """Every app's schedules, checked: unique names, exactly one timing, known keys."""
    specs: dict[str, ScheduleSpec] = {}
    for label, module in app_modules("schedules"):
        for declared in getattr(module, "SCHEDULES", ()):
            where = f"{label}.schedules: {declared.get('name', '?')!r}"
            try:
                spec = ScheduleSpec(**declared)
            except TypeError as exc:
                raise ImproperlyConfigured(f"{where}: {exc}") from None
            timings = [x for x in (spec.seconds, spec.minutes, spec.cron) if x is not None]
            if len(timings) != 1:
                raise ImproperlyConfigured(f"{where}: give exactly one of seconds, minutes or cron")
            if spec.name in specs:
                raise ImproperlyConfigured(f"{where}: the name is declared twice")
            specs[spec.name] = spec
    return list(specs.values())

from typing import Any

from django.apps import AppConfig, apps
from django.contrib.admin import apps as admin_apps
from django.core import checks
from django.db.models.signals import post_migrate


class MonitorsiteConfig(AppConfig):
    """The project package as an app, for its management commands and checks (no models)."""

    name = "monitorsite"
    verbose_name = "Monitor site"

    def ready(self) -> None:
        from django.db.backends.signals import connection_created

        from monitorsite.dbfiles import restrict_database_files
        from monitorsite.grafana import create_market_views

        checks.register(secret_key_check)
        # After the trades tables exist, on every migrate (each start runs one).
        post_migrate.connect(
            create_market_views, sender=apps.get_app_config("trades"), dispatch_uid="monitorsite.market_views"
        )
        connection_created.connect(restrict_database_files, dispatch_uid="restrict_database_files")
        name_queued_tasks()


def name_queued_tasks() -> None:
    """django-q2's queued task (shown in the admin with the ORM broker) has no name of its own: its
    pages said "OrmQ object (4)". It is named by its task, as the admin's other task lists are."""
    from django_q.models import OrmQ

    def queued_task(task: OrmQ) -> str:
        return f"queued task {task.name() or task.task_id()}"

    OrmQ.__str__ = queued_task  # type: ignore[method-assign,assignment]


class MonitorAdminConfig(admin_apps.AdminConfig):
    """django.contrib.admin with this site's AdminSite (the cockpit as its index)."""

    default = False
    default_site = "monitorsite.admin_site.MonitorAdminSite"


def secret_key_check(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    from django.conf import settings

    if settings._wrapped.SECRET_KEY:  # type: ignore[attr-defined]  # the lazy wrapper raises on empty
        return []
    return [
        checks.Error(
            f"DJANGO_SECRET_KEY is not set and {settings.SECRET_KEY_FILE} does not exist.",
            hint="Run `manage.py prepare_site` (scripts/start.sh does) or set DJANGO_SECRET_KEY.",
            id="monitorsite.E001",
        )
    ]

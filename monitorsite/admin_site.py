"""The admin site: its name says what it is, its index is the cockpit, and Trading comes first."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, URLResolver, path

# Apps in the order an operator looks for them; any other app follows, by name.
APP_ORDER = ("trades", "alerts", "backups")


class MonitorAdminSite(admin.AdminSite):
    site_header = "Trading bot monitor"
    site_title = "Trading bot monitor"
    index_title = "Cockpit"
    # The list of every model beside every page took 275 of a desk's 1,400 px (the rule list scrolled
    # sideways); the cockpit and the breadcrumbs lead everywhere it did.
    enable_nav_sidebar = False

    def get_app_list(self, request: HttpRequest, app_label: str | None = None) -> list[dict[str, Any]]:
        apps = super().get_app_list(request, app_label)
        rank = {label: i for i, label in enumerate(APP_ORDER)}
        return sorted(apps, key=lambda app: (rank.get(app["app_label"], len(APP_ORDER)), app["name"]))

    def index(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> TemplateResponse:
        from monitorsite import cockpit

        return super().index(request, {"cockpit": cockpit.build(), **(extra_context or {})})

    def get_urls(self) -> list[URLPattern | URLResolver]:
        return [path("report/", self.admin_view(self.report), name="report"), *super().get_urls()]

    def report(self, request: HttpRequest) -> HttpResponse:
        """A period's figures for one bot or all (staff only, as every admin page): a page, or its CSV."""
        from monitorsite.report import report_for

        form, report = report_for(request.GET)
        if report is not None and request.GET.get("format") == "csv":
            return report.csv_response()
        context = {
            **self.each_context(request),
            "title": report.title if report else "Report",
            "form": form,
            "report": report,
        }
        return TemplateResponse(request, "admin/report.html", context)

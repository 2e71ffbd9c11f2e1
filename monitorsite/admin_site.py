"""The admin site: its name says what it is, its index is the cockpit, and Trading comes first."""

from __future__ import annotations

import hashlib
from typing import Any

from django.conf import settings
from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.template.context import make_context
from django.template.loader import get_template
from django.template.loader_tags import BlockNode
from django.template.response import TemplateResponse
from django.urls import URLPattern, URLResolver, path
from django.utils.cache import get_conditional_response
from django.views.decorators.gzip import gzip_page

# Apps in the order an operator looks for them; any other app follows, by name.
APP_ORDER = ("trades", "alerts", "backups")
# The cockpit's script checks its live part this often while the page is visible (cockpit.js).
REFRESH_SECONDS = 15
# The fragment's halt forms carry this instead of a CSRF token: a fresh token is masked anew on every
# render, so no two answers would be equal (and no ETag would ever match). The script puts the
# page's own token in its place.
CSRF_PLACEHOLDER = "from-the-page"


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
        return super().index(request, {**self.cockpit_context(), **(extra_context or {})})

    def cockpit_context(self) -> dict[str, Any]:
        from monitorsite import cockpit
        from trades.market import market_zone

        return {
            "cockpit": cockpit.build(),
            "refresh_seconds": REFRESH_SECONDS,
            "market_zone": market_zone().key,
        }

    def get_urls(self) -> list[URLPattern | URLResolver]:
        return [
            path("report/", self.admin_view(self.report), name="report"),
            path("cockpit/live/", self.admin_view(gzip_page(self.cockpit_live)), name="cockpit_live"),
            *super().get_urls(),
        ]

    def cockpit_live(self, request: HttpRequest) -> HttpResponse:
        """The cockpit's live part alone (its figures, states, halts, alerts and health; not the app
        list), for the page's script to swap in. Its ETag is the hash of these bytes, so an unchanged
        cockpit answers 304 to ``If-None-Match``: the part has no clock finer than a minute (ages are
        in whole minutes; the "updated" time is written by the script, outside it).

        Compressed (a fifth of its bytes, bench/cockpit_refresh.py): unlike the whole page, it carries
        no secret for BREACH to guess at, its forms having the placeholder instead of a CSRF token."""
        context = {**self.cockpit_context(), "csrf_token": CSRF_PLACEHOLDER}
        content = render_block("admin/index.html", "cockpit_live", context, request).encode()
        response = HttpResponse(content, content_type=f"text/html; charset={settings.DEFAULT_CHARSET}")
        etag = f'"{hashlib.sha256(content).hexdigest()[:32]}"'
        response["ETag"] = etag
        return get_conditional_response(request, etag=etag, response=response)

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


def render_block(template_name: str, block: str, context: dict[str, Any], request: HttpRequest) -> str:
    """One ``{% block %}`` of a template, rendered alone with the page's context. The cockpit's live
    part stays where it is in ``admin/index.html`` (one copy of its markup, none kept in step by hand)
    and is served from there."""
    template = get_template(template_name).template  # type: ignore[attr-defined]
    (node,) = [n for n in template.nodelist.get_nodes_by_type(BlockNode) if n.name == block]
    bound = make_context(context, request)
    with bound.render_context.push_state(template), bound.bind_template(template):
        return node.render(bound)

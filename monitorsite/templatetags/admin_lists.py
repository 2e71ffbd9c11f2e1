"""The admin's lists on a phone: each cell carries its column's name, shown beside the value when the
rows stack (``admin.css``); only the list pages have these labels."""

from __future__ import annotations

from typing import Any

from django import template
from django.utils.html import escape, strip_tags
from django.utils.safestring import SafeString, mark_safe

register = template.Library()


@register.filter
def labelled(row: list[str], headers: list[dict[str, Any]]) -> list[SafeString]:
    """The row's cells (``items_for_result``: each one ``<td …>`` or ``<th …>``), every ``<td>`` with
    ``data-label`` set to its column's header; the select box and the headerless keep none."""
    cells = []
    for cell, header in zip(row, headers, strict=False):
        label = strip_tags(str(header.get("text", ""))).strip()
        if label and cell.startswith("<td"):
            cell = mark_safe(f'<td data-label="{escape(label)}"{cell[3:]}')
        cells.append(cell)
    cells.extend(row[len(cells) :])
    return cells

"""Charts drawn on the server as plain SVG (no script, no library): geometry only, the markup is in
templates/console/_charts.html. Presentation only: the figures come from the domain's progress."""
from __future__ import annotations

from collections.abc import Callable

ROW_HEIGHT = 28
LABEL_WIDTH = 0      # labels sit above each bar, so long unit names fit a 360 px phone


def percent(figures: dict) -> float:
    """Share of the audience reached: acknowledged or excused, as the overview counts it."""
    total = figures["total"]
    return round(100 * (figures["acknowledged"] + figures["exempt"]) / total, 1) if total else 100.0


def percent_bar(value: float) -> dict:
    return {"value": value, "width": max(0.0, min(100.0, value))}


def children_chart(children: list[dict], link: Callable[[dict], str]) -> dict:
    """One bar per child unit, the furthest behind first (then the most pending)."""
    rows = sorted(children, key=lambda c: (percent(c), -c["pending"], c["org_unit"]["name"]))
    bars = []
    for index, child in enumerate(rows):
        value = percent(child)
        bars.append({"name": child["org_unit"]["name"], "href": link(child), "percent": value,
                     "width": max(0.0, min(100.0, value)), "y": index * ROW_HEIGHT * 2,
                     "pending": child["pending"], "overdue": child["overdue"], "total": child["total"],
                     "acknowledged": child["acknowledged"], "exempt": child["exempt"], "opened": child["opened"],
                     "unit_id": child["org_unit"]["id"]})
    return {"bars": bars, "height": max(1, len(bars)) * ROW_HEIGHT * 2, "row": ROW_HEIGHT}


def share_bars(children: list[dict], value: Callable[[dict], float | None], link: Callable[[dict], str],
               title: str) -> dict:
    """A bar per child unit, lowest share first: `value(child)` in percent (None: nothing to show)."""
    rows = [c for c in children if value(c) is not None]
    rows.sort(key=lambda c: (value(c), c["org_unit"]["name"]))
    bars = [{"name": c["org_unit"]["name"], "href": link(c), "percent": round(value(c), 1),
             "width": max(0.0, min(100.0, value(c))), "y": i * ROW_HEIGHT * 2} for i, c in enumerate(rows)]
    return {"bars": bars, "height": max(1, len(bars)) * ROW_HEIGHT * 2, "row": ROW_HEIGHT, "title": title}

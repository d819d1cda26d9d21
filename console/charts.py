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


OVER_TIME = {"width": 320, "height": 190, "left": 38, "right": 8, "top": 12, "bottom": 36}


def over_time_chart(series: dict) -> dict | None:
    """One column per local day (share of the audience reached at the end of that day, today's live),
    from publication to the deadline (or to today when later), and the deadline as a vertical line.
    Days without a point stay empty. Presentation only: the points are the domain's (content.timeline)."""
    days = series["days"]
    start = series["published_on"] or (days[0]["day"] if days else None)
    if start is None or not days:
        return None
    end = max(d for d in (series["deadline_day"], days[-1]["day"]) if d is not None)
    count = (end - start).days + 1
    g = OVER_TIME
    plot_w = g["width"] - g["left"] - g["right"]
    plot_h = g["height"] - g["top"] - g["bottom"]
    step = plot_w / count
    columns = []
    for point in days:
        index = (point["day"] - start).days
        if not 0 <= index < count:
            continue
        value = percent(point)
        h = plot_h * max(0.0, min(100.0, value)) / 100
        columns.append({**point, "percent": value, "x": round(g["left"] + index * step + step * 0.12, 1),
                        "w": round(max(1.0, step * 0.76), 1), "y": round(g["top"] + plot_h - h, 1),
                        "h": round(h, 1),
                        "late": series["deadline_day"] is not None and point["day"] > series["deadline_day"]})
    deadline_x = None
    if series["deadline_day"] is not None and start <= series["deadline_day"] <= end:
        deadline_x = round(g["left"] + ((series["deadline_day"] - start).days + 1) * step, 1)
    grid = [{"value": v, "y": round(g["top"] + plot_h - plot_h * v / 100, 1)} for v in (0, 50, 100)]
    return {**g, "plot_w": plot_w, "plot_h": plot_h, "base_y": g["top"] + plot_h, "columns": columns,
            "grid": grid, "deadline_x": deadline_x, "start": start, "end": end,
            "end_x": g["left"] + plot_w, "label_y": g["top"] + plot_h + 14,
            "latest": columns[-1] if columns else None}


def share_bars(children: list[dict], value: Callable[[dict], float | None], link: Callable[[dict], str],
               title: str) -> dict:
    """A bar per child unit, lowest share first: `value(child)` in percent (None: nothing to show)."""
    rows = [c for c in children if value(c) is not None]
    rows.sort(key=lambda c: (value(c), c["org_unit"]["name"]))
    bars = [{"name": c["org_unit"]["name"], "href": link(c), "percent": round(value(c), 1),
             "width": max(0.0, min(100.0, value(c))), "y": i * ROW_HEIGHT * 2} for i, c in enumerate(rows)]
    return {"bars": bars, "height": max(1, len(bars)) * ROW_HEIGHT * 2, "row": ROW_HEIGHT, "title": title}

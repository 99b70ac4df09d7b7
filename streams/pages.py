"""Pages visited in a session, with time on page. Pure."""
from __future__ import annotations

from typing import Any


def page_visits(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One visit per navigate (or per first URL seen before any navigate), in order.

    Time on page runs to the next visit; the last page (the exit page) runs to the session's
    last event.
    """
    visits: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    for ev in events:
        url = ev.get("url")
        if url and (ev["type"] == "navigate" or current is None):
            if current is not None:
                current["left_at"] = ev["timestamp"]
            current = {"url": url, "entered_at": ev["timestamp"], "left_at": ev["timestamp"],
                       "time_on_page_ms": 0, "event_count": 0}
            visits.append(current)
        if current is not None:
            current["event_count"] += 1
    if visits and events:
        visits[-1]["left_at"] = events[-1]["timestamp"]
    for v in visits:
        v["time_on_page_ms"] = v["left_at"] - v["entered_at"]
    return visits

"""Pages visited in a session, with the time the user really spent on them. Pure.

Time on page runs from the page's navigation to the next one (the last page, the exit page, runs
to the session's last event), minus the time the tab was hidden or the session idle, which is
reported apart (`hidden_ms`, `idle_ms`): a tab left in the background for ten minutes is not ten
minutes on the page. The recorder says when: posthog-js writes custom events `window hidden` /
`window visible` (document visibility) and `sessionIdle` / `sessionNoLongerIdle` (no user activity
for its idle threshold). Any user action also ends a hidden or idle stretch.
"""
from __future__ import annotations

from typing import Any, Optional

HIDDEN_STARTS, HIDDEN_ENDS = "window hidden", "window visible"
IDLE_STARTS, IDLE_ENDS = "sessionIdle", "sessionNoLongerIdle"
_USER_ACTIONS = frozenset({"click", "input-change", "scroll", "highlight", "copy", "paste", "navigate",
                           "rage-click", "dead-click", "error-click", "mouse-thrash"})


def page_visits(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One visit per navigate (or per first URL seen before any navigate), in order.

    One pass with the open visit's clock in local variables (this runs for every closed session):
    `since` is the time accounted up to, `hidden`/`idle` the state after the latest event."""
    visits: list[dict[str, Any]] = []
    current: Optional[dict[str, Any]] = None
    since = hidden_ms = idle_ms = count = 0
    hidden = idle = False
    for ev in events:
        at = ev["timestamp"]
        kind = ev["type"]
        if current is None or kind == "navigate":
            url = ev.get("url")
            if url:
                if current is not None:
                    _close(current, since, hidden, idle, hidden_ms, idle_ms, count, at)
                current = {"url": url, "entered_at": at, "left_at": at, "time_on_page_ms": 0, "event_count": 0,
                           "hidden_ms": 0, "idle_ms": 0}
                visits.append(current)
                since, hidden_ms, idle_ms, count = at, 0, 0, 0
        if current is not None:
            if at > since:
                if hidden:
                    hidden_ms += at - since
                elif idle:
                    idle_ms += at - since
                since = at
            count += 1
        if kind == "custom":
            marker = ev.get("name")
            if marker == HIDDEN_STARTS:
                hidden = True
            elif marker == HIDDEN_ENDS:
                hidden = False
            elif marker == IDLE_STARTS:
                idle = True
            elif marker == IDLE_ENDS:
                idle = False
        elif kind in _USER_ACTIONS:
            hidden = idle = False  # someone is there, looking
    if current is not None:
        _close(current, since, hidden, idle, hidden_ms, idle_ms, count, events[-1]["timestamp"])
    return visits


def _close(visit: dict[str, Any], since: int, hidden: bool, idle: bool, hidden_ms: int, idle_ms: int,
           count: int, at: int) -> None:
    """End a visit at `at`: the time since `since` goes to the state the page was in."""
    if at > since:
        if hidden:
            hidden_ms += at - since
        elif idle:
            idle_ms += at - since
    visit["left_at"] = at
    visit["event_count"] = count
    visit["hidden_ms"], visit["idle_ms"] = hidden_ms, idle_ms
    visit["time_on_page_ms"] = max(at - visit["entered_at"] - hidden_ms - idle_ms, 0)

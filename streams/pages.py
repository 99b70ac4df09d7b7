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


class _Clock:
    """Splits the time of one visit into active, hidden and idle."""

    def __init__(self, at: int, hidden: bool, idle: bool) -> None:
        self.since = at
        self.hidden, self.idle = hidden, idle
        self.hidden_ms = self.idle_ms = 0

    def advance(self, at: int) -> None:
        spent = max(at - self.since, 0)
        if self.hidden:
            self.hidden_ms += spent
        elif self.idle:
            self.idle_ms += spent
        self.since = max(at, self.since)


def _marker(ev: dict[str, Any]) -> Optional[str]:
    return ev.get("name") if ev.get("type") == "custom" else None


def page_visits(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One visit per navigate (or per first URL seen before any navigate), in order."""
    visits: list[dict[str, Any]] = []
    current: Optional[dict[str, Any]] = None
    clock: Optional[_Clock] = None
    hidden = idle = False
    for ev in events:
        at = ev["timestamp"]
        url = ev.get("url")
        if url and (ev["type"] == "navigate" or current is None):
            if current is not None and clock is not None:
                _close(current, clock, at)
            current = {"url": url, "entered_at": at, "left_at": at, "time_on_page_ms": 0, "event_count": 0,
                       "hidden_ms": 0, "idle_ms": 0}
            clock = _Clock(at, hidden, idle)
            visits.append(current)
        if clock is not None:
            clock.advance(at)
        hidden, idle = _state_after(ev, hidden, idle)
        if clock is not None:
            clock.hidden, clock.idle = hidden, idle
        if current is not None:
            current["event_count"] += 1
    if current is not None and clock is not None and events:
        _close(current, clock, events[-1]["timestamp"])
    return visits


def _state_after(ev: dict[str, Any], hidden: bool, idle: bool) -> tuple[bool, bool]:
    marker = _marker(ev)
    if marker == HIDDEN_STARTS:
        return True, idle
    if marker == HIDDEN_ENDS:
        return False, idle
    if marker == IDLE_STARTS:
        return hidden, True
    if marker == IDLE_ENDS:
        return hidden, False
    if ev["type"] in _USER_ACTIONS:
        return False, False  # someone is there, looking
    return hidden, idle


def _close(visit: dict[str, Any], clock: _Clock, at: int) -> None:
    clock.advance(at)
    visit["left_at"] = at
    visit["hidden_ms"], visit["idle_ms"] = clock.hidden_ms, clock.idle_ms
    visit["time_on_page_ms"] = max(at - visit["entered_at"] - clock.hidden_ms - clock.idle_ms, 0)

"""Crafted closed sessions for tests: `make_session(events, **overrides)`.

Events are given as partial contract-shaped dicts; missing `event_id`, `session_id`
and `url` are filled in (url carries over from the last navigate), events are sorted,
pages are built from navigate events and context from the events' user/org/device/location.
"""
from __future__ import annotations

from typing import Any

BASE = 1_700_000_000_000  # an epoch-ms origin for readable offsets
SESSION_ID = "user-1:sess-1"
CONTEXT_KEYS = ("user", "org", "device", "location")


def at(seconds: float) -> int:
    """Epoch ms `seconds` after BASE."""
    return BASE + int(round(seconds * 1000))


def _complete(events: list[dict[str, Any]], session_id: str) -> list[dict[str, Any]]:
    ordered = sorted((dict(e) for e in events), key=lambda e: e["timestamp"])
    url = None
    for index, event in enumerate(ordered, start=1):
        event.setdefault("event_id", f"e{index}")
        event.setdefault("session_id", session_id)
        if event.get("type") == "navigate":
            url = event["url"]
        elif event.get("url") is None and url is not None:
            event["url"] = url
    return ordered


def _pages(events: list[dict[str, Any]], ended_at: int) -> list[dict[str, Any]]:
    navigations = [e for e in events if e.get("type") == "navigate"]
    pages = []
    for i, nav in enumerate(navigations):
        left_at = navigations[i + 1]["timestamp"] if i + 1 < len(navigations) else ended_at
        is_last = i + 1 == len(navigations)
        count = sum(1 for e in events
                    if nav["timestamp"] <= e["timestamp"] and (e["timestamp"] < left_at or is_last))
        pages.append({"url": nav["url"], "entered_at": nav["timestamp"], "left_at": left_at,
                      "time_on_page_ms": left_at - nav["timestamp"], "event_count": count})
    return pages


def _context(events: list[dict[str, Any]]) -> dict[str, Any]:
    context: dict[str, Any] = {key: None for key in CONTEXT_KEYS}
    for event in events:
        for key in CONTEXT_KEYS:
            if event.get(key):
                context[key] = event[key]
    return context


def make_session(events: list[dict[str, Any]], **overrides: Any) -> dict[str, Any]:
    """A ClosedSession-shaped dict; any top-level key can be overridden."""
    session_id = overrides.get("session_id", SESSION_ID)
    ordered = _complete(events, session_id)
    started_at = ordered[0]["timestamp"] if ordered else BASE
    ended_at = ordered[-1]["timestamp"] if ordered else BASE
    session = {
        "session_id": session_id,
        "window_id": f"{session_id}@{started_at}",
        "part": 1,
        "previous_window_id": None,
        "close_reason": "inactivity",
        "started_at": started_at,
        "ended_at": ended_at,
        "duration_ms": ended_at - started_at,
        "event_count": len(ordered),
        "events": ordered,
        "signals": [],
        "pages": _pages(ordered, ended_at),
        "context": _context(ordered),
        "comparisons": [],
    }
    session.update(overrides)
    return session

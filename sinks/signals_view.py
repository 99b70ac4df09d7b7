"""The frustration signals of a view, each moment once (pure).

Source-sent frustration events and the signals the sessionizer derived are merged: a derived
signal close to a source one is the same moment. Derived dead clicks on form fields are dropped
(clicking into a text field changes nothing visible by design).
"""
from __future__ import annotations

import re
from typing import Any

from replaylens.schemas.events import FRUSTRATION_TYPES
from replaylens.sinks.describe import Event, of_types
from replaylens.sinks.profile_view import SessionView

SIGNAL_DEDUP_WINDOW_MS = 2_000   # a derived signal this close to a source one is the same
_FORM_FIELD = re.compile(r"^\s*(input|textarea|select|label)\b|\[contenteditable|\bcontenteditable\b", re.I)


def _event_as_signal(event: Event) -> dict[str, Any]:
    target = event.get("target") or {}
    return {"type": event["type"], "timestamp": event["timestamp"], "event_id": event.get("event_id"),
            "url": event.get("url"), "selector": target.get("selector"), "text": target.get("text"),
            "count": _count(event.get("properties")), "derived": False, "detail": None}


def _count(properties: Any) -> int:
    """A source's own count (`properties.count`); 1 when it is missing, masked or no number."""
    value = properties.get("count") if type(properties) is dict else None
    try:
        return int(value or 1)
    except (TypeError, ValueError, OverflowError):
        return 1


def _same_signal(a: dict[str, Any], b: dict[str, Any]) -> bool:
    if a["type"] != b["type"]:
        return False
    if a.get("event_id") and a.get("event_id") == b.get("event_id"):
        return True
    if abs(a["timestamp"] - b["timestamp"]) > SIGNAL_DEDUP_WINDOW_MS:
        return False
    sa, sb = a.get("selector"), b.get("selector")
    return sa is None or sb is None or sa == sb


def _is_field_dead_click(signal: dict[str, Any]) -> bool:
    return (signal.get("type") == "dead-click" and bool(signal.get("derived", True))
            and bool(_FORM_FIELD.search(signal.get("selector") or "")))


def frustration_signals(view: SessionView) -> list[dict[str, Any]]:
    """Source-sent frustration events and derived signals, one per moment, in time order."""
    candidates = [dict(s) for s in view.signals
                  if s.get("type") in FRUSTRATION_TYPES and not _is_field_dead_click(s)]
    candidates += [_event_as_signal(e) for e in of_types(view.events, FRUSTRATION_TYPES)]
    if not candidates:
        return []
    # Source-sent first: they are what the recorder saw; derived ones only fill gaps.
    candidates.sort(key=lambda s: (bool(s.get("derived", True)), s["timestamp"]))
    kept: list[dict[str, Any]] = []
    for candidate in candidates:
        twin = next((k for k in kept if _same_signal(k, candidate)), None)
        if twin is None:
            kept.append(candidate)
        else:
            twin["count"] = max(int(twin.get("count") or 1), int(candidate.get("count") or 1))
            twin["detail"] = twin.get("detail") or candidate.get("detail")
    kept.sort(key=lambda s: s["timestamp"])
    return kept

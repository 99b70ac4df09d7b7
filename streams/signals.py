"""Frustration signals derived from raw clicks and errors. Pure.

For sources that send only raw clicks, as the issue asks:
- rage-click: `rage_count`+ clicks on one target, each within `rage_window_ms` of the burst's first;
- error-click: a click followed by a console or network error within `error_window_ms`;
- dead-click: a click followed by nothing that answers it (navigation, input, custom event, error)
  within `dead_window_ms`, while the session goes on past that window (a last click before the
  user leaves proves nothing); clicks inside a rage burst are not counted again as dead.
Signals the source sent itself (events of those types) are kept as derived=False, and a derived
signal that repeats one of them (same type, target, within the window) is dropped.
Mouse-thrash needs pointer movement, which the event contract does not carry: it comes from the
source (or the rrweb mapper, which sees mouse moves) as events.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from replaylens.schemas.events import FRUSTRATION_TYPES

_ANSWERS = frozenset({"navigate", "input-change", "custom", "network-error", "console-error",
                      "paste", "copy", "session-end"})
_ERRORS = frozenset({"network-error", "console-error"})


@dataclass(frozen=True, slots=True)
class SignalRules:
    rage_count: int = 3
    rage_window_ms: int = 1_000
    dead_window_ms: int = 2_500
    error_window_ms: int = 2_000

    @classmethod
    def from_settings(cls, s: Any) -> "SignalRules":
        return cls(s.rage_click_count, s.rage_click_window_ms, s.dead_click_window_ms,
                   s.error_click_window_ms)


_FOCUS_TAGS = ("input", "textarea", "select", "label", "option")


def _is_focus_click(ev: dict[str, Any]) -> bool:
    """Clicking into a form field focuses it: no visible answer is expected, so never dead."""
    selector = ((ev.get("target") or {}).get("selector") or "").lower()
    last = selector.rsplit(">", 1)[-1].strip()
    return last.startswith(_FOCUS_TAGS)


def _target_key(ev: dict[str, Any]) -> str:
    t = ev.get("target") or {}
    return t.get("selector") or t.get("text") or ev.get("url") or ""


def _signal(kind: str, ev: dict[str, Any], count: int = 1, detail: str | None = None,
            derived: bool = True) -> dict[str, Any]:
    t = ev.get("target") or {}
    return {"type": kind, "timestamp": ev["timestamp"], "event_id": ev.get("event_id"),
            "url": ev.get("url"), "selector": t.get("selector"), "text": t.get("text"),
            "count": count, "derived": derived, "detail": detail}


def _error_detail(err_ev: dict[str, Any]) -> str:
    err = err_ev.get("error") or {}
    if err_ev["type"] == "network-error":
        return f"{err.get('method') or 'request'} {err.get('request_url') or ''} failed with {err.get('status')}".strip()
    return err.get("message") or "console error"


def detect_signals(events: list[dict[str, Any]], rules: SignalRules = SignalRules()) -> list[dict[str, Any]]:
    """Signals in time order. `events` must be sorted by timestamp."""
    sent = [_signal(ev["type"], ev, derived=False) for ev in events if ev["type"] in FRUSTRATION_TYPES]
    # A double click is one gesture: its second click (flagged by the rrweb mapper) is not
    # counted again toward a rage burst.
    clicks = [i for i, ev in enumerate(events) if ev["type"] == "click"
              and not (ev.get("properties") or {}).get("double_click")]
    derived: list[dict[str, Any]] = []
    in_rage: set[int] = set()
    derived += _rage_clicks(events, clicks, rules, in_rage)
    derived += _after_click(events, clicks, rules, in_rage)
    derived = [d for d in derived if not _repeats(d, sent, rules)]
    return sorted(sent + derived, key=lambda s: s["timestamp"])


def _rage_clicks(events, clicks, rules, in_rage: set[int]) -> list[dict[str, Any]]:
    out = []
    by_target: dict[str, list[int]] = {}
    for i in clicks:
        by_target.setdefault(_target_key(events[i]), []).append(i)
    for idxs in by_target.values():
        start = 0
        while start < len(idxs):
            first_ts = events[idxs[start]]["timestamp"]
            end = start
            while end + 1 < len(idxs) and events[idxs[end + 1]]["timestamp"] - first_ts <= rules.rage_window_ms:
                end += 1
            count = end - start + 1
            if count >= rules.rage_count:
                out.append(_signal("rage-click", events[idxs[start]], count,
                                   f"{count} clicks within {rules.rage_window_ms} ms"))
                in_rage.update(idxs[start:end + 1])
                start = end + 1
            else:
                start += 1
    return out


def _after_click(events, clicks, rules, in_rage: set[int]) -> list[dict[str, Any]]:
    out = []
    n = len(events)
    last_ts = events[-1]["timestamp"] if events else 0
    horizon = max(rules.dead_window_ms, rules.error_window_ms)
    for i in clicks:
        ts = events[i]["timestamp"]
        answered, error = False, None
        j = i + 1
        while j < n and events[j]["timestamp"] - ts <= horizon:
            kind, dt = events[j]["type"], events[j]["timestamp"] - ts
            if kind in _ERRORS and dt <= rules.error_window_ms and error is None:
                error = events[j]
            if kind in _ANSWERS and dt <= rules.dead_window_ms:
                answered = True
            j += 1
        if error is not None:
            out.append(_signal("error-click", events[i], detail=_error_detail(error)))
        elif (not answered and i not in in_rage and last_ts - ts > rules.dead_window_ms
              and not _is_focus_click(events[i])):
            out.append(_signal("dead-click", events[i], detail=f"nothing happened within {rules.dead_window_ms} ms"))
    return out


def _repeats(d: dict[str, Any], sent: list[dict[str, Any]], rules: SignalRules) -> bool:
    window = max(rules.rage_window_ms, rules.dead_window_ms, rules.error_window_ms)
    return any(s["type"] == d["type"] and abs(s["timestamp"] - d["timestamp"]) <= window
               and (s["selector"] or s["text"]) == (d["selector"] or d["text"]) for s in sent)

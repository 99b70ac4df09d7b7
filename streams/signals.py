"""Frustration signals derived from raw clicks and errors, and likely automated sessions. Pure.

For sources that send only raw clicks:
- rage-click: `rage_count`+ clicks on ONE element (its rrweb node id when the click carries one,
  else its selector or text), each within `rage_window_ms` of the burst's first. Not rage: a
  burst that selects text (a highlight comes with it; it is on a text field; or it includes a
  double click on text that is not a control: a double click selects a word, a triple click the
  paragraph) and double clicks (one gesture).
- error-click: a click followed by a console or network error within `error_window_ms`.
- dead-click, two rules, by what the stream can show:
  * a click that carries the page's response (`properties.response`, written by the rrweb
    mapping, which sees DOM mutations, navigations, inputs, scrolls and network requests) is
    dead only when nothing responded within `dead_window_ms` and the recording covers that
    whole window;
  * a click without DOM information (contract events) is dead only when the stream itself shows
    that nothing answered: no answer (navigation, input, custom event, error, copy/paste) came
    within `dead_window_ms`, and the user clicked the same target again within
    `dead_retry_window_ms` with still no answer in between. A click followed by silence and then
    an answer (a confirmation page 5 s after "Pay now") is not dead: slowness is not deadness.
  Clicks into form fields, toggles (checkbox, radio, switch), clicks that start or end a text
  selection (a highlight around them) and clicks inside a rage burst are never dead.
Signals the source sent itself are kept as derived=False, and a derived signal that repeats one of
them (same type, target, within the window) is dropped.
Mouse-thrash needs pointer movement, which the event contract does not carry: it comes from the
source (or the rrweb mapper, which sees mouse moves) as events.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Iterable, Optional

from replaylens.schemas.events import FRUSTRATION_TYPES

_ANSWERS = frozenset({"navigate", "input-change", "custom", "network-error", "console-error",
                      "paste", "copy", "session-end"})
_ERRORS = frozenset({"network-error", "console-error"})
# Recorder markers (posthog-js tags) are custom events, but nothing the page did for the user.
RECORDER_MARKERS = frozenset({"window hidden", "window visible", "sessionIdle", "sessionNoLongerIdle",
                              "browser offline", "browser online", "recording paused", "recording resumed"})


@dataclass(frozen=True, slots=True)
class SignalRules:
    rage_count: int = 3
    rage_window_ms: int = 1_000
    dead_window_ms: int = 2_500
    error_window_ms: int = 2_000
    dead_retry_window_ms: int = 10_000

    @classmethod
    def from_settings(cls, s: Any) -> "SignalRules":
        return cls(s.rage_click_count, s.rage_click_window_ms, s.dead_click_window_ms,
                   s.error_click_window_ms, s.dead_click_retry_window_ms)


_FOCUS_TAGS = ("input", "textarea", "select", "label", "option")
_TOGGLE_TYPES = frozenset({"checkbox", "radio"})
_TOGGLE_ROLES = frozenset({"checkbox", "radio", "switch", "tab", "menuitemcheckbox", "menuitemradio"})
_TEXT_INPUT_TYPES = frozenset({"", "text", "search", "email", "url", "tel", "password", "number"})
_CONTROL_TAGS = frozenset({"a", "button", "input", "select", "textarea", "summary", "option", "label"})
_MAX_SELECTION_MS = 10_000  # a drag-selection longer than this is not looked back for


def _target(ev: dict[str, Any]) -> dict[str, Any]:
    return ev.get("target") or {}


def _word(target: dict[str, Any], key: str) -> Optional[str]:
    """A target attribute (`tag`, `type`, `role`: extra fields of any JSON type) when a string."""
    value = target.get(key)
    return value if type(value) is str else None


def _properties(ev: dict[str, Any]) -> dict[str, Any]:
    props = ev.get("properties")
    return props if type(props) is dict else {}


def _number(value: Any) -> Optional[float]:
    """A property read as a number: None when it is anything else (masked at ingest, a string,
    a bool, an object), so no property can make closing fail."""
    if type(value) is int or type(value) is float and math.isfinite(value):
        return value
    return None


def _is_double_click(ev: dict[str, Any]) -> bool:
    return _properties(ev).get("double_click") is True


def _last_selector_tag(ev: dict[str, Any]) -> str:
    selector = (_target(ev).get("selector") or "").lower()
    return selector.rsplit(">", 1)[-1].strip()


def _is_focus_click(ev: dict[str, Any]) -> bool:
    """Clicking into a form field focuses it: no visible answer is expected, so never dead."""
    tag = _word(_target(ev), "tag")
    if tag:
        return tag in _FOCUS_TAGS
    return _last_selector_tag(ev).startswith(_FOCUS_TAGS)


def is_toggle(target: dict[str, Any]) -> bool:
    """A checkbox, radio button or switch: flipping it again is a choice, not trouble."""
    return _word(target, "type") in _TOGGLE_TYPES or _word(target, "role") in _TOGGLE_ROLES


def _is_text_field(ev: dict[str, Any]) -> bool:
    t = _target(ev)
    tag = _word(t, "tag") or _last_selector_tag(ev).split(".", 1)[0].split("#", 1)[0].split("[", 1)[0]
    if tag == "textarea":
        return True
    return tag == "input" and (_word(t, "type") or "") in _TEXT_INPUT_TYPES


def _target_key(ev: dict[str, Any]) -> tuple:
    """One element: the rrweb node on this page when known, else selector/text on this page."""
    node = _properties(ev).get("node_id")
    if type(node) is int:
        return ("node", ev.get("url"), node)
    t = _target(ev)
    return ("target", ev.get("url"), t.get("selector") or t.get("text") or "")


def _signal(kind: str, ev: dict[str, Any], count: int = 1, detail: str | None = None,
            derived: bool = True) -> dict[str, Any]:
    t = _target(ev)
    return {"type": kind, "timestamp": ev["timestamp"], "event_id": ev.get("event_id"),
            "url": ev.get("url"), "selector": t.get("selector"), "text": t.get("text"),
            "count": count, "derived": derived, "detail": detail}


def _error_detail(err_ev: dict[str, Any]) -> str:
    err = err_ev.get("error") or {}
    if err_ev["type"] == "network-error":
        verb = f"{err['method']} " if err.get("method") else ""
        status = err.get("status")
        outcome = f"failed with {status}" if status else "failed"
        return f"{verb}{err.get('request_url') or 'a request'} {outcome}"
    return err.get("message") or "console error"


def _is_answer(ev: dict[str, Any]) -> bool:
    return ev["type"] in _ANSWERS and not (ev["type"] == "custom" and ev.get("name") in RECORDER_MARKERS)


def detect_signals(events: list[dict[str, Any]], rules: SignalRules = SignalRules()) -> list[dict[str, Any]]:
    """Signals in time order. `events` must be sorted by timestamp."""
    sent = [_signal(ev["type"], ev, derived=False) for ev in events if ev["type"] in FRUSTRATION_TYPES]
    # A double click is one gesture: its second click (flagged by the rrweb mapper) is not
    # counted again toward a rage burst.
    clicks = [i for i, ev in enumerate(events) if ev["type"] == "click" and not _is_double_click(ev)]
    derived: list[dict[str, Any]] = []
    if clicks:
        in_burst: set[int] = set()
        # Read once per session: whether any highlight can make a click a text selection, and
        # each click's target key (the rage, retry and selection rules all compare them).
        look = _Lookup(events, any(ev["type"] == "highlight" for ev in events))
        derived += _rage_clicks(events, clicks, rules, in_burst, look)
        derived += _after_click(events, clicks, rules, in_burst, look)
    derived = [d for d in derived if not _repeats(d, sent, rules)]
    return sorted(sent + derived, key=lambda s: s["timestamp"])


class _Lookup:
    """What the rules of one session's clicks read again and again, read once."""

    __slots__ = ("events", "highlighted", "keys")

    def __init__(self, events: list[dict[str, Any]], highlighted: bool) -> None:
        self.events, self.highlighted = events, highlighted
        self.keys: dict[int, tuple] = {}

    def key(self, i: int) -> tuple:
        """_target_key of events[i], remembered."""
        key = self.keys.get(i)
        if key is None:
            key = self.keys[i] = _target_key(self.events[i])
        return key

    def selects_text(self, i: int, rules: SignalRules) -> bool:
        # Without a highlight in the session no click selects text (and nothing is computed).
        return self.highlighted and _selects_text(self.events, i, rules)


def _rage_clicks(events, clicks, rules, in_burst: set[int], look: _Lookup) -> list[dict[str, Any]]:
    out = []
    by_target: dict[tuple, list[int]] = {}
    for i in clicks:
        by_target.setdefault(look.key(i), []).append(i)
    for idxs in by_target.values():
        start = 0
        while start < len(idxs):
            first_ts = events[idxs[start]]["timestamp"]
            end = start
            while end + 1 < len(idxs) and events[idxs[end + 1]]["timestamp"] - first_ts <= rules.rage_window_ms:
                end += 1
            count = end - start + 1
            if count >= rules.rage_count:
                burst = idxs[start:end + 1]
                in_burst.update(burst)
                if not _is_selection(events, burst, rules, look):
                    out.append(_signal("rage-click", events[idxs[start]], count,
                                       f"{count} clicks within {rules.rage_window_ms} ms"))
                start = end + 1
            else:
                start += 1
    return out


def _is_selection(events, burst: list[int], rules: SignalRules, look: _Lookup) -> bool:
    """A multi-click that selects text: a highlight comes with it, the clicks are in a text field,
    or they include a double click on text that is not a control (a double click selects a word,
    a triple click the paragraph)."""
    first = events[burst[0]]
    if _is_text_field(first) or any(look.selects_text(i, rules) for i in burst):
        return True
    key, since = look.key(burst[0]), first["timestamp"]
    until = events[burst[-1]]["timestamp"] + rules.rage_window_ms
    j = burst[0]
    while j < len(events) and events[j]["timestamp"] <= until:
        ev = events[j]
        if (ev["type"] == "click" and _is_double_click(ev)
                and ev["timestamp"] >= since and look.key(j) == key and _is_plain_text(ev)):
            return True
        j += 1
    return False


def _is_plain_text(ev: dict[str, Any]) -> bool:
    t = _target(ev)
    tag = _word(t, "tag")
    return bool(tag) and tag not in _CONTROL_TAGS and not t.get("role")


def _selects_text(events, i: int, rules: SignalRules) -> bool:
    """The click ends or starts a text selection (a highlight around it): not a press on a control."""
    ts = events[i]["timestamp"]
    lo, hi = i, i
    while lo > 0 and ts - events[lo - 1]["timestamp"] <= rules.rage_window_ms + _MAX_SELECTION_MS:
        lo -= 1
    while hi + 1 < len(events) and events[hi + 1]["timestamp"] - ts <= rules.rage_window_ms:
        hi += 1
    for ev in events[lo:hi + 1]:
        if ev["type"] != "highlight":
            continue
        start = ev["timestamp"]
        end = start + int(_number(_properties(ev).get("duration_ms")) or 0)
        if start - rules.rage_window_ms <= ts <= end + rules.rage_window_ms:
            return True
    return False


def _after_click(events, clicks, rules, in_burst: set[int], look: _Lookup) -> list[dict[str, Any]]:
    out = []
    last_ts = events[-1]["timestamp"] if events else 0
    for i in clicks:
        error = _error_after(events, i, rules)
        if error is not None:
            out.append(_signal("error-click", events[i], detail=_error_detail(error)))
            continue
        if (i in in_burst or _is_focus_click(events[i]) or is_toggle(_target(events[i]))
                or look.selects_text(i, rules)):
            continue
        response = _properties(events[i]).get("response")
        if isinstance(response, dict):
            dead = _dead_by_response(response, rules)
        else:
            dead = last_ts - events[i]["timestamp"] > rules.dead_window_ms and _dead_by_retry(events, i, rules, look)
        if dead:
            out.append(_signal("dead-click", events[i], detail=f"nothing happened within {rules.dead_window_ms} ms"))
    return out


def _error_after(events, i: int, rules: SignalRules) -> Optional[dict[str, Any]]:
    ts = events[i]["timestamp"]
    j = i + 1
    while j < len(events) and events[j]["timestamp"] - ts <= rules.error_window_ms:
        if events[j]["type"] in _ERRORS:
            return events[j]
        j += 1
    return None


def _dead_by_response(response: dict[str, Any], rules: SignalRules) -> bool:
    after = _number(response.get("after_ms"))
    if after is not None:
        return after > rules.dead_window_ms
    watched = _number(response.get("none_within_ms"))
    return watched is not None and watched >= rules.dead_window_ms


def _dead_by_retry(events, i: int, rules: SignalRules, look: _Lookup) -> bool:
    """No answer within the window, and the same target clicked again before any answer came:
    the user saw nothing happen and tried again."""
    ts, key = events[i]["timestamp"], look.key(i)
    retried = False
    j = i + 1
    while j < len(events) and events[j]["timestamp"] - ts <= rules.dead_retry_window_ms:
        ev = events[j]
        if _is_answer(ev):
            return retried and ev["timestamp"] - ts > rules.dead_window_ms
        if ev["type"] == "click" and look.key(j) == key:
            retried = True
        j += 1
    return retried


def _repeats(d: dict[str, Any], sent: list[dict[str, Any]], rules: SignalRules) -> bool:
    window = max(rules.rage_window_ms, rules.dead_window_ms, rules.error_window_ms)
    return any(s["type"] == d["type"] and abs(s["timestamp"] - d["timestamp"]) <= window
               and (s["selector"] or s["text"]) == (d["selector"] or d["text"]) for s in sent)


# -- likely automated sessions ------------------------------------------------------------------

_AUTOMATION = re.compile(r"HeadlessChrome|PhantomJS|\bwebdriver\b|Puppeteer|Playwright|Selenium|"
                         r"Cypress|Lighthouse|chrome-lighthouse|SlimerJS|Nightmare", re.IGNORECASE)


def automation_marker(text: Optional[str]) -> Optional[str]:
    """The automation tool a user agent or console line names, if any."""
    if not text:
        return None
    match = _AUTOMATION.search(text)
    return match.group(0) if match else None


def automation_evidence(events: Iterable[dict[str, Any]]) -> Optional[str]:
    """Why the session looks automated (a headless or webdriver user agent, automation markers in
    console output), or None. Only what the events carry: nothing is guessed."""
    plain_agents: set[str] = set()  # user agents already searched (every event repeats one)
    for ev in events:
        device = ev.get("device") or {}
        if device.get("automation"):
            return str(device["automation"])
        agent = device.get("user_agent")
        if agent and agent not in plain_agents:
            marker = automation_marker(agent)
            if marker:
                return f"user agent names {marker}"
            if type(agent) is str:
                plain_agents.add(agent)
        if ev.get("type") == "console-error":
            marker = automation_marker((ev.get("error") or {}).get("message"))
            if marker:
                return f"console output mentions {marker}"
    return None

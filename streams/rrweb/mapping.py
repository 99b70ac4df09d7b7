"""rrweb events → contract events (schemas/events.py).

Mapping (rrweb → contract):
- Meta (4) `href`                                   → navigate, unless it names the page already
  shown (recorders re-take a full snapshot of the same page every few minutes: not a page view)
- Custom `$pageview` / `$url_changed` (posthog-js) `payload.href` → navigate (single-page apps:
  rrweb itself records no History API navigation)
- MouseInteraction (3/2) click, double click, tap   → click (double clicks carry properties.double_click;
  a tap is touch start+end that barely moved, or a lone touch end; the browser's synthetic click
  right after a tap is folded into the tap, not counted twice). Each click carries
  `properties.response`: what the page did next (gestures.ClickResponses), for the dead-click rule.
- Input (3/5), one per keystroke                    → ONE input-change per field edit, emitted when
  focus leaves the field (another field, a click elsewhere, blur, page load, end of recording)
- Scroll (3/3)                                      → scroll, one per burst per target
- MouseMove / TouchMove (3/1, 3/6)                  → mouse-thrash when the pointer reverses often
- Selection (3/14)                                  → highlight (consecutive selections folded)
- Log (3/11) and plugin `rrweb/console@1`, error/assert → console-error
- plugin `rrweb/network@1`, failed requests          → network-error (one per failed request)
- Custom (5) `tag`/`payload`                        → custom (tag "copy"/"paste" → copy/paste);
  posthog-js's own bookkeeping tags (`$session_options`, `$posthog_config`, …) are skipped
- PageSpy console errors and failed requests         → console-error / network-error
Everything else (resizes, media, style sheets, canvas, fonts, drag) is skipped and counted.

Pure and defensive: unknown node ids, missing fields and malformed events are skipped and
counted by kind in `MappedRecording.skipped`, never raised. Linear in the recording size.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Optional

from replaylens.streams.rrweb import plugins
from replaylens.streams.rrweb.dom import NODE_TEXT, Dom, describe, dicts, trim
from replaylens.streams.rrweb.formats import (
    Recording,
    RecordingInput,
    events_session_id,
    looks_like_rrweb_event,
    read_recording,
    timestamp_of,
)
from replaylens.streams.rrweb.gestures import ClickResponses, Thrash, is_tap
from replaylens.streams.rrweb.options import DEFAULT_OPTIONS, RrwebError, RrwebOptions
from replaylens.streams.signals import automation_marker

# rrweb enums
_FULL_SNAPSHOT, _INCREMENTAL, _META, _CUSTOM, _PLUGIN = 2, 3, 4, 5, 6
_SRC_MUTATION, _SRC_MOUSE_MOVE, _SRC_MOUSE_INTERACTION, _SRC_SCROLL = 0, 1, 2, 3
_SRC_INPUT, _SRC_TOUCH_MOVE, _SRC_LOG, _SRC_SELECTION = 5, 6, 11, 14
_MI_CLICK, _MI_DBLCLICK, _MI_FOCUS, _MI_BLUR = 2, 4, 5, 6
_MI_TOUCH_START, _MI_TOUCH_END, _MI_TOUCH_CANCEL = 7, 9, 10
_TYPE_NAMES = {0: "dom-content-loaded", 1: "load", 2: "full-snapshot", 3: "incremental", 4: "meta",
               5: "custom", 6: "plugin"}
_SOURCE_NAMES = {4: "viewport-resize", 7: "media-interaction", 8: "style-sheet-rule", 9: "canvas-mutation",
                 10: "font", 12: "drag", 13: "style-declaration", 15: "adopted-style-sheet",
                 16: "custom-element"}
_TOGGLE_TYPES = frozenset({"checkbox", "radio"})
# posthog-js tags that announce a page change in a single-page app (payload.href).
_NAVIGATION_TAGS = frozenset({"$pageview", "$url_changed"})
# posthog-js tags that are recorder bookkeeping, not something the user did or saw.
_RECORDER_TAGS = frozenset({"$session_options", "$posthog_config", "$session_id_change", "$recording_started",
                            "$session_ending", "$session_starting", "triggerGroupSamplingDecisionMade"})


@dataclass
class MappedRecording:
    """The contract events of one recording, and what was read to make them."""

    format: str
    session_id: str
    events: list[dict]
    rrweb_events: int
    skipped: Counter = field(default_factory=Counter)

    def summary(self) -> str:
        """One line for a person: format, counts, what was skipped by kind."""
        skipped = ", ".join(f"{kind} {n}" for kind, n in self.skipped.most_common()) or "nothing"
        return (f"{self.format} recording {self.session_id}: {self.rrweb_events} rrweb events → "
                f"{len(self.events)} events; skipped: {skipped}")


class _PendingInput:
    __slots__ = ("node_id", "event", "keystrokes")

    def __init__(self, node_id: int, event: dict) -> None:
        self.node_id = node_id
        self.event = event
        self.keystrokes = 1


class _Window:
    """One browser tab or window of the recording: its own DOM ids and current page."""

    __slots__ = ("dom", "url")

    def __init__(self) -> None:
        self.dom = Dom()
        self.url: Optional[str] = None


class _Converter:
    def __init__(self, session_id: str, context: dict[str, dict], options: RrwebOptions) -> None:
        self.session_id = session_id
        self.context = {k: dict(v) for k, v in context.items() if isinstance(v, dict) and v}
        self.options = options
        self.windows: dict[Any, _Window] = {}
        self.window = self._window(None)
        self.url: Optional[str] = None
        self.out: list[dict] = []
        self.index = 0
        self.skipped: Counter = Counter()
        self.pending_input: Optional[_PendingInput] = None
        self.scroll_bursts: dict[Any, tuple[dict, int]] = {}
        self.selection: Optional[tuple[dict, int]] = None
        self.touch_starts: dict[Any, tuple[int, float, float]] = {}
        self.last_tap: Optional[tuple[dict, int, float, float]] = None
        self.thrash = Thrash(options)
        self.responses = ClickResponses(options)

    @property
    def dom(self) -> Dom:
        return self.window.dom

    def _window(self, key: Any) -> _Window:
        window = self.windows.get(key)
        if window is None:
            window = self.windows[key] = _Window()
        return window

    # -- output ---------------------------------------------------------------------------------

    def emit(self, kind: str, timestamp: int, suffix: str = "", **fields: Any) -> dict:
        event: dict[str, Any] = {
            "event_id": f"rr-{self.session_id}-{self.index}{suffix}",
            "session_id": self.session_id,
            "timestamp": timestamp,
            "type": kind,
            "url": self.url,
        }
        for key, value in fields.items():
            if value is not None:
                event[key] = value
        for key, value in self.context.items():
            event[key] = dict(value)
        self.out.append(event)
        return event

    def target(self, node_id: Any) -> tuple[Optional[dict], Optional[int]]:
        resolved_id, node = self.dom.element_for(node_id)
        if node is None:
            return None, None
        target: dict[str, Any] = {"selector": self.dom.selector(node),
                                  "text": self.dom.text(node, self.options.text_max_chars)}
        target = {k: v for k, v in target.items() if v is not None}
        target.update(describe(node))
        return (target or None), resolved_id

    # -- driving --------------------------------------------------------------------------------

    def run(self, events: list, side_entries: list[tuple[str, int, dict]] = ()) -> list[dict]:
        side = sorted(side_entries, key=lambda entry: entry[1])
        next_side = 0
        last = None
        for index, event in enumerate(events):
            self.index = index
            timestamp = timestamp_of(event)
            if timestamp is None:
                self.skipped["no-timestamp"] += 1
                continue
            while next_side < len(side) and side[next_side][1] <= timestamp:
                self._side(len(events) + next_side, side[next_side])
                next_side += 1
            self.index = index
            try:
                self.handle(event, timestamp)
            except (TypeError, ValueError, AttributeError, KeyError, IndexError, RecursionError) as exc:
                # a malformed event is skipped; the rest of the recording still maps
                self.skipped[f"malformed:{type(exc).__name__}"] += 1
            last = timestamp if last is None else max(last, timestamp)
        for k in range(next_side, len(side)):
            self._side(len(events) + k, side[k])
            last = side[k][1] if last is None else max(last, side[k][1])
        self.flush_input()
        if last is not None:
            self.responses.finish(last)
        self.out.sort(key=lambda e: e["timestamp"])  # stable: same-ms events keep recording order
        return self.out

    def _side(self, index: int, entry: tuple[str, int, dict]) -> None:
        self.index = index
        kind, timestamp, data = entry
        if kind == "console":
            parsed = plugins.pagespy_console_error(data)
            if parsed is not None:
                self.emit("console-error", timestamp, error=parsed[0], properties=parsed[1])
            else:
                logs = data.get("logs") if isinstance(data.get("logs"), list) else []
                self.note_automation(plugins.console_message([a.get("value") if isinstance(a, dict) else a
                                                              for a in logs]))
        elif kind == "network":
            self.network([data], timestamp, final_only=True)

    def handle(self, event: dict, timestamp: int) -> None:
        kind = event.get("type")
        data = event.get("data")
        if not isinstance(data, dict):
            self.skipped[f"no-data:{_TYPE_NAMES.get(kind, kind)}"] += 1
            return
        if "windowId" in event:
            self._switch_window(event["windowId"])
        if kind == _INCREMENTAL:
            self.incremental(data, timestamp)
        elif kind == _META:
            self.meta(data, timestamp)
        elif kind == _FULL_SNAPSHOT:
            self.flush_input()
            self.dom.reset()
            self.dom.add_tree(data.get("node"), None)
        elif kind == _CUSTOM:
            self.custom(data, timestamp)
        elif kind == _PLUGIN:
            self.plugin(data, timestamp)
        else:
            self.skipped[_TYPE_NAMES.get(kind, f"type-{kind}")] += 1

    def _switch_window(self, key: Any) -> None:
        window = self._window(key if isinstance(key, (str, int)) else None)
        if window is not self.window:
            self.flush_input()
            self.window = window
            if window.url is not None:
                self.url = window.url

    # -- pages ------------------------------------------------------------------------------------

    def meta(self, data: dict, timestamp: int) -> None:
        href = data.get("href")
        if not isinstance(href, str) or not href:
            return
        if href == self.window.url:
            self.responses.respond("navigation", timestamp)
            return  # a re-taken snapshot of the page already shown: not a new page view
        properties = {k: data[k] for k in ("width", "height") if isinstance(data.get(k), int)}
        self.navigate(href, timestamp, properties or None)

    def navigate(self, href: str, timestamp: int, properties: Optional[dict]) -> None:
        self.new_page()
        self.url = self.window.url = href
        self.responses.respond("navigation", timestamp)
        self.emit("navigate", timestamp, properties=properties)

    def new_page(self) -> None:
        self.flush_input()
        self.scroll_bursts.clear()
        self.selection = None
        self.touch_starts.clear()
        self.last_tap = None
        self.thrash.reset()

    def incremental(self, data: dict, timestamp: int) -> None:
        source = data.get("source")
        if source == _SRC_MUTATION:
            self.dom.apply_mutation(data)
            if any(data.get(k) for k in ("adds", "removes", "texts", "attributes")):
                self.responses.respond("mutation", timestamp)
        elif source in (_SRC_MOUSE_MOVE, _SRC_TOUCH_MOVE):
            self.moves(data, timestamp)
        elif source == _SRC_MOUSE_INTERACTION:
            self.interaction(data, timestamp)
        elif source == _SRC_SCROLL:
            self.responses.respond("scroll", timestamp)
            self.scroll(data, timestamp)
        elif source == _SRC_INPUT:
            self.responses.respond("input", timestamp)
            self.input(data, timestamp)
        elif source == _SRC_SELECTION:
            self.select(data, timestamp)
        elif source == _SRC_LOG:
            self.console(data, timestamp)
        else:
            self.skipped[_SOURCE_NAMES.get(source, f"source-{source}")] += 1

    # -- pointer --------------------------------------------------------------------------------

    def interaction(self, data: dict, timestamp: int) -> None:
        action = data.get("type")
        node_id = data.get("id")
        x, y = _number(data.get("x")), _number(data.get("y"))
        if action in (_MI_CLICK, _MI_DBLCLICK):
            self.leave_field(node_id)
            if action == _MI_CLICK and self.fold_into_tap(node_id, timestamp, x, y):
                return
            self.click(node_id, timestamp, x, y, double=action == _MI_DBLCLICK)
        elif action == _MI_TOUCH_START:
            self.leave_field(node_id)
            self.touch_starts[node_id] = (timestamp, x or 0.0, y or 0.0)
        elif action == _MI_TOUCH_END:
            start = self.touch_starts.pop(node_id, None)
            if is_tap(self.options, start, timestamp, x, y):
                event = self.click(node_id, timestamp, x, y, pointer="touch")
                self.last_tap = (event, timestamp, x or 0.0, y or 0.0)
        elif action == _MI_TOUCH_CANCEL:
            self.touch_starts.pop(node_id, None)
        elif action == _MI_FOCUS:
            self.leave_field(node_id)
        elif action == _MI_BLUR:
            if self.pending_input is not None and self.pending_input.node_id == node_id:
                self.flush_input()

    def fold_into_tap(self, node_id: Any, timestamp: int, x: Optional[float], y: Optional[float]) -> bool:
        """The click a browser synthesizes after a tap is the same action: retarget the tap to the
        clicked node (the click names the element that handled it) and drop the click."""
        if self.last_tap is None:
            return False
        tap, tapped_at, tx, ty = self.last_tap
        close = self.options.tap_click_merge_px
        if (timestamp - tapped_at > self.options.tap_click_merge_ms
                or abs((x or 0.0) - tx) > close or abs((y or 0.0) - ty) > close):
            return False
        self.last_tap = None
        target, resolved = self.target(node_id)
        if target is not None:
            tap["target"] = target
            tap["properties"]["node_id"] = resolved
        return True

    def click(self, node_id: Any, timestamp: int, x: Optional[float], y: Optional[float],
              double: bool = False, pointer: str = "mouse") -> dict:
        target, resolved = self.target(node_id)
        properties: dict[str, Any] = {"node_id": resolved if resolved is not None else node_id, "pointer": pointer}
        if x is not None and y is not None:
            properties["x"], properties["y"] = x, y
        if double:
            properties["double_click"] = True
        event = self.emit("click", timestamp, target=target, properties=properties)
        self.responses.click(event)
        return event

    def moves(self, data: dict, timestamp: int) -> None:
        positions = data.get("positions")
        if not isinstance(positions, list):
            return
        points = []
        for position in dicts(positions):
            x, y = _number(position.get("x")), _number(position.get("y"))
            offset = _number(position.get("timeOffset")) or 0.0
            if x is not None and y is not None:
                points.append((timestamp + int(offset), x, y))
        points.sort(key=lambda p: p[0])
        for t, x, y in points:
            if self.thrash.feed(t, x, y):
                self.emit("mouse-thrash", t, properties={
                    "reversals": self.options.thrash_min_reversals,
                    "window_ms": self.options.thrash_window_ms,
                    "pointer": "touch" if data.get("source") == _SRC_TOUCH_MOVE else "mouse",
                    "x": x, "y": y})

    # -- scroll and selection -------------------------------------------------------------------

    def scroll(self, data: dict, timestamp: int) -> None:
        node_id = data.get("id")
        x, y = _number(data.get("x")), _number(data.get("y"))
        burst = self.scroll_bursts.get(node_id)
        if burst is not None and timestamp - burst[1] <= self.options.scroll_gap_ms:
            event = burst[0]
            properties = event["properties"]
            properties["scroll_count"] += 1
            properties["duration_ms"] = timestamp - event["timestamp"]
            if x is not None:
                properties["x"] = x
            if y is not None:
                properties["y"] = y
            self.scroll_bursts[node_id] = (event, timestamp)
            return
        target, _ = self.target(node_id)
        if target is not None and target.get("selector") == "document":
            target = None  # the page itself: the url says which
        properties = {"node_id": node_id, "scroll_count": 1, "duration_ms": 0, "from_x": x, "from_y": y,
                      "x": x, "y": y}
        event = self.emit("scroll", timestamp, target=target, properties=properties)
        self.scroll_bursts[node_id] = (event, timestamp)

    def select(self, data: dict, timestamp: int) -> None:
        ranges = [r for r in dicts(data.get("ranges"))]
        if not ranges:
            return
        first = ranges[0]
        if first.get("start") == first.get("end") and first.get("startOffset") == first.get("endOffset"):
            return  # a collapsed range is a caret, not a selection
        text = self.selected_text(first)
        target, _ = self.target(first.get("start"))
        if self.selection is not None and timestamp - self.selection[1] <= self.options.selection_gap_ms:
            event = self.selection[0]
            event["target"] = target
            event["value"] = text
            event["properties"]["changes"] += 1
            event["properties"]["duration_ms"] = timestamp - event["timestamp"]
            self.selection = (event, timestamp)
            return
        event = self.emit("highlight", timestamp, target=target, value=text,
                          properties={"changes": 1, "duration_ms": 0})
        self.selection = (event, timestamp)

    def selected_text(self, selection_range: dict) -> Optional[str]:
        node = self.dom.nodes.get(selection_range.get("start"))
        if node is None or node.kind != NODE_TEXT:
            return None
        start = selection_range.get("startOffset")
        start = start if isinstance(start, int) else 0
        end = selection_range.get("endOffset") if selection_range.get("end") == selection_range.get("start") else None
        return trim(node.text[start:end if isinstance(end, int) else None], self.options.text_max_chars * 4)

    # -- inputs ---------------------------------------------------------------------------------

    def input(self, data: dict, timestamp: int) -> None:
        node_id = data.get("id")
        if not isinstance(node_id, int) or node_id < 0:
            self.skipped["unattributed-input"] += 1  # rrweb emits id -1 for inputs it could not attribute
            return
        text = data.get("text")
        text = text if isinstance(text, str) else ""
        pending = self.pending_input
        if pending is not None and pending.node_id != node_id:
            self.flush_input()
            pending = None
        if pending is not None:
            pending.event["timestamp"] = timestamp
            pending.event["value"] = text
            pending.keystrokes += 1
            self.remember_check(pending.event, data)
            return
        target, _ = self.target(node_id)
        event = {"timestamp": timestamp, "value": text, "target": target, "properties": {"node_id": node_id},
                 "index": self.index}
        if data.get("userTriggered") is False:  # newer rrweb flags values set by page scripts
            event["properties"]["user_triggered"] = False
        self.remember_check(event, data)
        self.pending_input = _PendingInput(node_id, event)

    def remember_check(self, event: dict, data: dict) -> None:
        node = self.dom.nodes.get(data.get("id"))
        is_toggle = node is not None and str(node.attrs.get("type", "")).lower() in _TOGGLE_TYPES
        if is_toggle and isinstance(data.get("isChecked"), bool):
            event["properties"]["checked"] = data["isChecked"]

    def leave_field(self, node_id: Any) -> None:
        if self.pending_input is not None and self.pending_input.node_id != node_id:
            self.flush_input()

    def flush_input(self) -> None:
        pending, self.pending_input = self.pending_input, None
        if pending is None:
            return
        draft = pending.event
        properties = draft["properties"]
        properties["keystrokes"] = pending.keystrokes
        value = draft["value"]
        if value and value.strip("*") == "":
            properties["masked_by_recorder"] = True
        saved_index, self.index = self.index, draft["index"]
        self.emit("input-change", draft["timestamp"], target=draft["target"], value=value, properties=properties)
        self.index = saved_index

    # -- errors, network and custom events ------------------------------------------------------

    def plugin(self, data: dict, timestamp: int) -> None:
        name = data.get("plugin")
        payload = data.get("payload")
        if name == plugins.CONSOLE_PLUGIN and isinstance(payload, dict):
            self.console(payload, timestamp)
        elif name == plugins.NETWORK_PLUGIN:
            self.network(plugins.network_requests(payload), timestamp)
        else:
            self.skipped[f"plugin:{name}"] += 1

    def console(self, record: dict, timestamp: int) -> None:
        parsed = plugins.console_error(record)
        if parsed is None:
            self.note_automation(plugins.console_message(record.get("payload")))
            return
        self.emit("console-error", timestamp, error=parsed[0], properties=parsed[1])

    def note_automation(self, message: Optional[str]) -> None:
        """Console output that names a browser-automation tool marks the session (signals.py
        decides what is evidence); the message itself is not kept."""
        marker = automation_marker(message)
        if marker and not self.context.get("device", {}).get("automation"):
            self.context.setdefault("device", {})["automation"] = f"console output mentions {marker}"
            for event in self.out:
                event["device"] = dict(self.context["device"])

    def network(self, requests: list[dict], timestamp: int, final_only: bool = False) -> None:
        if final_only:
            requests = [r for r in requests if r.get("readyState") in (None, 4)
                        or r.get("responseType") == "resource"]
        failed = 0
        for request in requests:
            started = plugins.request_started_at(request, timestamp)
            self.responses.respond("network", started)
            if not plugins.request_failed(request):
                continue
            error, properties = plugins.network_error(request)
            self.emit("network-error", started, suffix=f"-{failed}" if failed else "", error=error,
                      properties=properties)
            failed += 1

    def custom(self, data: dict, timestamp: int) -> None:
        tag = data.get("tag")
        if not isinstance(tag, str) or not tag.strip():
            self.skipped["custom-without-tag"] += 1
            return
        payload = data.get("payload")
        if tag in _NAVIGATION_TAGS:
            href = payload.get("href") if isinstance(payload, dict) else None
            if isinstance(href, str) and href and href != self.window.url:
                self.navigate(href, timestamp, {"source": tag})
            return
        if tag in _RECORDER_TAGS:
            self.skipped["recorder-bookkeeping"] += 1
            return
        if isinstance(payload, dict):
            properties: Optional[dict] = payload
        elif payload is None:
            properties = None
        else:
            properties = {"payload": payload}
        if tag.lower() in ("copy", "paste"):
            self.emit(tag.lower(), timestamp, properties=properties)
        else:
            self.emit("custom", timestamp, name=tag, properties=properties)


def _number(value: Any) -> Optional[float]:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


# ---------------------------------------------------------------------------------------------
# Entry points


def load_recording(data: RecordingInput) -> list[dict]:
    """The rrweb event list of one recording (any format in formats.py), decompressed.

    Raises RrwebError when no event list is found, or when a non-empty list holds no rrweb
    event at all.
    """
    return read_recording(data).events


def recording_session_id(data: RecordingInput) -> Optional[str]:
    """The session id a recording names (on its wrapper or on its events), or None."""
    recording = read_recording(data)
    return events_session_id(recording.events) or recording.session_id


def _choose_session_id(recording: Recording, given: Optional[str]) -> Optional[str]:
    chosen = events_session_id(recording.events) or recording.session_id or (str(given) if given else None)
    if chosen is None:
        stamps = [timestamp_of(e) for e in recording.events] + [entry[1] for entry in recording.side_entries]
        first = min((s for s in stamps if s is not None), default=None)
        chosen = f"rrweb-{first}" if first is not None else None
    return chosen


def map_recording(data: RecordingInput, session_id: Optional[str] = None, user: Optional[dict] = None,
                  options: RrwebOptions = DEFAULT_OPTIONS) -> MappedRecording:
    """Read one recording in any known format and map it; says what it read and skipped.

    Session id: the events' own `sessionId`, else the wrapper's (PostHog export `data.id`, rrweb
    extension `session.id`, `sessionId`), else `session_id`, else "rrweb-<first timestamp>".
    User: the wrapper's person (PostHog), else `user`.
    """
    recording = read_recording(data)
    chosen = _choose_session_id(recording, session_id)
    if chosen is None:
        return MappedRecording(recording.format, str(session_id or ""), [], 0, recording.skipped)
    context = {"user": recording.user or (dict(user) if isinstance(user, dict) else None),
               "device": recording.device, "location": recording.location}
    converter = _Converter(chosen, context, options)
    if recording.page_url:
        converter.url = recording.page_url  # for what happens before the recording's first Meta
    events = converter.run(recording.events, recording.side_entries)
    skipped = recording.skipped + converter.skipped
    return MappedRecording(recording.format, chosen, events, len(recording.events), skipped)


def ingest_recording(data: RecordingInput, session_id: Optional[str] = None, user: Optional[dict] = None,
                     options: RrwebOptions = DEFAULT_OPTIONS) -> list[dict]:
    """map_recording's events."""
    return map_recording(data, session_id, user, options).events


def rrweb_to_events(rrweb_events: list[dict], session_id: Optional[str] = None, user: Optional[dict] = None,
                    options: RrwebOptions = DEFAULT_OPTIONS) -> list[dict]:
    """Contract event dicts (see schemas.events.Event) for a list of rrweb events, by timestamp.

    The session id is the one the events carry (`sessionId`), else `session_id`, else
    "rrweb-<first timestamp>". `user` ({id, email}) is attached to every event. Event ids are
    "rr-<session>-<index of the rrweb event>" (a suffix "-k" for the k-th failed request of one
    network event), so converting the same recording twice gives the same ids.
    """
    if not isinstance(rrweb_events, list):
        raise RrwebError(f"not an rrweb recording: expected a list of rrweb events, got {type(rrweb_events).__name__}")
    if rrweb_events and not any(looks_like_rrweb_event(e) for e in rrweb_events):
        raise RrwebError("not an rrweb recording: no item has a numeric 'type' and 'timestamp'")
    return ingest_recording(rrweb_events, session_id, user, options)

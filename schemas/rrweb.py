"""rrweb recordings → contract events (schemas/events.py).

rrweb is the replay format most browser recorders emit: a list of `{type, data, timestamp}` events
whose clicks and inputs name DOM node ids, not selectors. This module keeps a light id → node
index built from the full snapshot (type 2) and updated by mutations, so a click on node 1147
becomes `{"selector": "a.nav-link", "text": "Pricing"}`.

Mapping (rrweb → contract):
- Meta (4) `href`                                   → navigate (every page load; sets the current url)
- MouseInteraction (3/2) click, double click, tap   → click (double clicks carry properties.double_click;
  a tap is touch start+end that barely moved, or a lone touch end; the browser's synthetic click
  right after a tap is folded into the tap, not counted twice)
- Input (3/5), one per keystroke                    → ONE input-change per field edit, emitted when
  focus leaves the field (another field, a click elsewhere, blur, page load, end of recording)
- Scroll (3/3)                                      → scroll, one per burst per target
- MouseMove / TouchMove (3/1, 3/6)                  → mouse-thrash when the pointer reverses often
- Selection (3/14)                                  → highlight (consecutive selections folded)
- Log (3/11) and plugin `rrweb/console@1`, error/assert → console-error
- plugin `rrweb/network@1`, status >= 400 or 0/failed → network-error (one per failed request)
- Custom (5) `tag`/`payload`                        → custom (tag "copy"/"paste" → copy/paste)
Everything else (resizes, media, style sheets, canvas, fonts, drag) is skipped.

Pure and defensive: unknown node ids, missing fields and malformed events are skipped, never
raised. Linear in the recording size; the snapshot is indexed by reference, never copied.
"""
from __future__ import annotations

import json
import re
from collections import deque
from dataclasses import dataclass
from typing import Any, Iterable, Optional, Union

__all__ = [
    "RrwebError",
    "RrwebOptions",
    "load_recording",
    "recording_session_id",
    "rrweb_to_events",
    "ingest_recording",
]


class RrwebError(ValueError):
    """The input is not an rrweb recording (not JSON, no event list, no rrweb-shaped events)."""


@dataclass(frozen=True)
class RrwebOptions:
    """Thresholds of the mapping. Defaults match replaylens Settings where a twin exists."""

    scroll_gap_ms: int = 1_000          # scrolls of one target closer than this form one burst
    selection_gap_ms: int = 1_000       # selection changes closer than this are one highlight
    text_max_chars: int = 80            # target.text is trimmed to this
    tap_max_move_px: float = 15.0       # a touch that moved further is a swipe, not a tap
    tap_max_duration_ms: int = 800      # a longer touch is a press or a drag, not a tap
    tap_click_merge_ms: int = 1_000     # a click this soon after a tap, nearby, is the tap's echo
    tap_click_merge_px: float = 40.0
    thrash_window_ms: int = 1_500       # Settings.thrash_window_ms
    thrash_min_reversals: int = 6       # Settings.thrash_min_direction_changes
    thrash_min_travel_px: float = 30.0  # smaller wiggles are hand jitter, not a reversal


DEFAULT_OPTIONS = RrwebOptions()

# rrweb enums
_FULL_SNAPSHOT, _INCREMENTAL, _META, _CUSTOM, _PLUGIN = 2, 3, 4, 5, 6
_SRC_MUTATION, _SRC_MOUSE_MOVE, _SRC_MOUSE_INTERACTION, _SRC_SCROLL = 0, 1, 2, 3
_SRC_INPUT, _SRC_TOUCH_MOVE, _SRC_LOG, _SRC_SELECTION = 5, 6, 11, 14
_MI_CLICK, _MI_DBLCLICK, _MI_FOCUS, _MI_BLUR = 2, 4, 5, 6
_MI_TOUCH_START, _MI_TOUCH_END, _MI_TOUCH_CANCEL = 7, 9, 10
_NODE_DOCUMENT, _NODE_ELEMENT, _NODE_TEXT = 0, 2, 3

_CONSOLE_PLUGIN = "rrweb/console@1"
_NETWORK_PLUGIN = "rrweb/network@1"
_ERROR_LEVELS = frozenset({"error", "assert"})

# Wrapper keys, in the order they are tried; values may nest (PostHog: {"result": {"snapshots": ...}}).
_WRAPPER_KEYS = ("events", "result", "snapshots", "recording", "data", "rrwebEvents", "rrweb_events")
_WINDOWED_KEYS = ("snapshot_data_by_window_id", "snapshotsByWindowId")
_SESSION_KEYS = ("sessionId", "session_id", "$session_id", "sessionID")

_INTERACTIVE_TAGS = frozenset({"a", "button", "input", "select", "textarea", "label", "summary", "option"})
_INTERACTIVE_ROLES = frozenset({"button", "link", "tab", "menuitem", "checkbox", "radio", "switch", "option"})
_FIELD_TAGS = frozenset({"input", "select", "textarea"})
_SKIP_TEXT_TAGS = frozenset({"script", "style", "noscript", "template"})
_TOGGLE_TYPES = frozenset({"checkbox", "radio"})
# Input types whose value attribute is a visible label rather than what the user typed.
_BUTTON_INPUT_TYPES = frozenset({"button", "submit", "reset"})
_CSS_IDENT = re.compile(r"^-?[A-Za-z_][\w-]*$")
_SPACES = re.compile(r"\s+")
_MAX_TEXT_NODES = 200
_MAX_ANCESTORS = 6

RecordingInput = Union[bytes, bytearray, str, list, dict]


# ---------------------------------------------------------------------------------------------
# Unwrapping


def _decode(data: Union[bytes, bytearray, str]) -> Any:
    try:
        import orjson
    except ImportError:  # pragma: no cover - orjson is a dependency; json keeps this module pure
        orjson = None
    try:
        if orjson is not None:
            return orjson.loads(data)
        return json.loads(data)
    except (ValueError, TypeError) as exc:
        raise RrwebError(f"not an rrweb recording: the input is not JSON ({exc})") from None


def _looks_like_rrweb_event(item: Any) -> bool:
    return (isinstance(item, dict) and isinstance(item.get("type"), int)
            and not isinstance(item.get("type"), bool) and _timestamp(item) is not None)


def _find_event_list(value: Any, depth: int = 0) -> Optional[list]:
    if isinstance(value, list):
        return value
    if not isinstance(value, dict) or depth > 4:
        return None
    for key in _WINDOWED_KEYS:
        windows = value.get(key)
        if isinstance(windows, dict):
            merged = [e for events in windows.values() if isinstance(events, list) for e in events]
            return sorted(merged, key=lambda e: _timestamp(e) or 0) if merged else merged
    for key in _WRAPPER_KEYS:
        if key in value:
            found = _find_event_list(value[key], depth + 1)
            if found is not None:
                return found
    return None


def _parse(data: RecordingInput) -> Any:
    if isinstance(data, (bytes, bytearray, str)):
        return _decode(data)
    if isinstance(data, (list, dict)):
        return data
    raise RrwebError(f"not an rrweb recording: expected JSON text, a list or a dict, got {type(data).__name__}")


def load_recording(data: RecordingInput) -> list[dict]:
    """The rrweb event list of one recording: a bare array or a common wrapper around one.

    Accepts JSON bytes/str or already decoded data. Wrappers: {"events"|"result"|"snapshots"|
    "recording"|"data": ...} (nested too) and PostHog's {"snapshot_data_by_window_id": {w: [...]}}.
    Items that are not rrweb-shaped dicts are dropped. Raises RrwebError when no event list is
    found, or when a non-empty list holds no rrweb event at all.
    """
    events = _find_event_list(_parse(data))
    if events is None:
        raise RrwebError("not an rrweb recording: no event list found (expected a JSON array, or an object "
                         "with 'events', 'result' or 'snapshots')")
    kept = [e for e in events if _looks_like_rrweb_event(e)]
    if events and not kept:
        raise RrwebError("not an rrweb recording: no item has a numeric 'type' and 'timestamp'")
    return kept


def recording_session_id(data: RecordingInput) -> Optional[str]:
    """The session id a recording names (on its wrapper or on its events), or None."""
    parsed = _parse(data)
    node: Any = parsed
    for _ in range(5):  # walk down the wrappers looking for an id on the way
        if not isinstance(node, dict):
            break
        for key in _SESSION_KEYS:
            if isinstance(node.get(key), (str, int)) and not isinstance(node.get(key), bool) and str(node[key]):
                return str(node[key])
        node = next((node[k] for k in _WRAPPER_KEYS if isinstance(node.get(k), (dict, list))), None)
    events = _find_event_list(parsed)
    return _session_id_of_events(events or [])


def _session_id_of_events(events: Iterable[Any]) -> Optional[str]:
    for event in events:
        if isinstance(event, dict):
            for key in _SESSION_KEYS:
                value = event.get(key)
                if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value):
                    return str(value)
    return None


def ingest_recording(data: RecordingInput, session_id: Optional[str] = None, user: Optional[dict] = None,
                     options: RrwebOptions = DEFAULT_OPTIONS) -> list[dict]:
    """load_recording + rrweb_to_events. Session id: the events' own `sessionId`, else the
    wrapper's (`sessionId`/`session_id`), else `session_id`, else "rrweb-<first timestamp>"."""
    parsed = _parse(data)
    events = load_recording(parsed)
    return rrweb_to_events(events, recording_session_id(parsed) or session_id, user, options)


# ---------------------------------------------------------------------------------------------
# The DOM index


class _Node:
    """One DOM node as far as targets need it. `attrs` is the snapshot's own dict until a
    mutation changes it (copy on write), so indexing never copies the snapshot."""

    __slots__ = ("kind", "tag", "attrs", "text", "parent", "children")

    def __init__(self, kind: int, tag: str, attrs: dict, text: str, parent: Optional[int]) -> None:
        self.kind = kind
        self.tag = tag
        self.attrs = attrs
        self.text = text
        self.parent = parent
        self.children: dict[int, None] = {}  # ordered set; O(1) removal


class _Dom:
    def __init__(self) -> None:
        self.nodes: dict[int, _Node] = {}

    def reset(self) -> None:
        self.nodes = {}

    def add_tree(self, root: Any, parent_id: Optional[int]) -> None:
        stack = [(root, parent_id)]
        nodes = self.nodes
        while stack:
            raw, parent = stack.pop()
            if not isinstance(raw, dict):
                continue
            node_id = raw.get("id")
            if not isinstance(node_id, int):
                continue
            kind = raw.get("type")
            tag = raw.get("tagName")
            attrs = raw.get("attributes")
            text = raw.get("textContent")
            node = _Node(kind if isinstance(kind, int) else -1, tag.lower() if isinstance(tag, str) else "",
                         attrs if isinstance(attrs, dict) else {}, text if isinstance(text, str) else "", parent)
            nodes[node_id] = node
            if parent is not None and parent in nodes:
                nodes[parent].children[node_id] = None
            children = raw.get("childNodes")
            if isinstance(children, list):
                stack.extend((child, node_id) for child in reversed(children))

    def apply_mutation(self, data: dict) -> None:
        nodes = self.nodes
        for removal in _dicts(data.get("removes")):
            node = nodes.get(removal.get("id"))
            parent = nodes.get(removal.get("parentId"))
            if parent is not None:
                parent.children.pop(removal.get("id"), None)
            if node is not None:
                node.parent = None  # kept in the index: a late click on it still resolves
        for addition in _dicts(data.get("adds")):
            parent_id = addition.get("parentId")
            self.add_tree(addition.get("node"), parent_id if isinstance(parent_id, int) else None)
        for change in _dicts(data.get("texts")):
            node = nodes.get(change.get("id"))
            if node is not None:
                value = change.get("value")
                node.text = value if isinstance(value, str) else ""
        for change in _dicts(data.get("attributes")):
            node = nodes.get(change.get("id"))
            attributes = change.get("attributes")
            if node is not None and isinstance(attributes, dict):
                merged = dict(node.attrs)
                for key, value in attributes.items():
                    if value is None:
                        merged.pop(key, None)
                    else:
                        merged[key] = value
                node.attrs = merged

    def element_for(self, node_id: Any) -> tuple[Optional[int], Optional[_Node]]:
        """The element a pointer event names: text nodes resolve to their parent element, inner
        parts (an svg path inside a button) to the nearest interactive ancestor."""
        node = self.nodes.get(node_id)
        if node is None:
            return None, None
        if node.kind != _NODE_ELEMENT and node.parent is not None:
            node_id, node = node.parent, self.nodes.get(node.parent)
            if node is None:
                return None, None
        if node.kind != _NODE_ELEMENT:
            return node_id, node
        current_id, current = node_id, node
        for _ in range(_MAX_ANCESTORS):
            if _is_interactive(current):
                return current_id, current
            parent = self.nodes.get(current.parent) if current.parent is not None else None
            if parent is None or parent.kind != _NODE_ELEMENT or parent.tag in ("body", "html"):
                break
            current_id, current = current.parent, parent
        return node_id, node

    def selector(self, node: _Node) -> Optional[str]:
        if node.kind == _NODE_DOCUMENT:
            return "document"
        own = _simple_selector(node)
        if own is None:
            return None
        if "#" in own or "." in own or "[" in own or node.tag in ("html", "body"):
            return own
        parent = self.nodes.get(node.parent) if node.parent is not None else None
        if parent is not None and parent.kind == _NODE_ELEMENT and parent.tag not in ("html", "body"):
            parent_selector = _simple_selector(parent)
            if parent_selector:
                return f"{parent_selector} > {own}"
        return own

    def text(self, node: _Node, limit: int) -> Optional[str]:
        if node.kind == _NODE_DOCUMENT:
            return None
        if node.kind == _NODE_TEXT:
            return _trim(node.text, limit)
        attrs = node.attrs
        if node.tag == "input":
            # Never the value of a text field (that is what the user typed); labels only.
            if str(attrs.get("type", "")).lower() in _BUTTON_INPUT_TYPES:
                return _trim(_str(attrs.get("value")), limit) or _label_attr(attrs, limit)
            return _label_attr(attrs, limit)
        collected = self._descendant_text(node, limit)
        return collected or _label_attr(attrs, limit) or self._image_alt(node, limit)

    def _descendant_text(self, node: _Node, limit: int) -> Optional[str]:
        parts: list[str] = []
        size = 0
        stack = list(reversed(node.children))
        seen = 0
        nodes = self.nodes
        while stack and seen < _MAX_TEXT_NODES and size < limit * 2:
            child = nodes.get(stack.pop())
            seen += 1
            if child is None:
                continue
            if child.kind == _NODE_TEXT:
                if child.text.strip():
                    parts.append(child.text)
                    size += len(child.text)
            elif child.kind == _NODE_ELEMENT and child.tag not in _SKIP_TEXT_TAGS:
                stack.extend(reversed(child.children))
        return _trim(" ".join(parts), limit)

    def _image_alt(self, node: _Node, limit: int) -> Optional[str]:
        for child_id in node.children:
            child = self.nodes.get(child_id)
            if child is not None and child.kind == _NODE_ELEMENT and child.tag in ("img", "svg"):
                label = _label_attr(child.attrs, limit)
                if label:
                    return label
        return None


def _is_interactive(node: _Node) -> bool:
    attrs = node.attrs
    return (node.tag in _INTERACTIVE_TAGS or attrs.get("role") in _INTERACTIVE_ROLES
            or "onclick" in attrs or "href" in attrs)


def _simple_selector(node: _Node) -> Optional[str]:
    tag = node.tag or None
    if tag is None:
        return None
    attrs = node.attrs
    selector = tag
    element_id = attrs.get("id")
    if isinstance(element_id, str) and _CSS_IDENT.match(element_id):
        selector += "#" + element_id
    classes = attrs.get("class")
    if isinstance(classes, str):
        picked = [c for c in classes.split() if _CSS_IDENT.match(c)][:2]
        if picked:
            selector += "." + ".".join(picked)
    if tag in _FIELD_TAGS and "#" not in selector:
        name = attrs.get("name")
        if isinstance(name, str) and _CSS_IDENT.match(name):
            selector += f"[name={name}]"
        elif isinstance(attrs.get("type"), str) and _CSS_IDENT.match(attrs["type"]) and "." not in selector:
            selector += f"[type={attrs['type']}]"
    return selector


def _label_attr(attrs: dict, limit: int) -> Optional[str]:
    for key in ("aria-label", "title", "alt", "placeholder"):
        value = attrs.get(key)
        if isinstance(value, str) and value.strip():
            return _trim(value, limit)
    return None


def _trim(text: Optional[str], limit: int) -> Optional[str]:
    if not text:
        return None
    text = _SPACES.sub(" ", text).strip()
    if not text:
        return None
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _str(value: Any) -> Optional[str]:
    return value if isinstance(value, str) else None


def _dicts(value: Any) -> Iterable[dict]:
    if isinstance(value, list):
        return (item for item in value if isinstance(item, dict))
    return ()


def _timestamp(event: Any) -> Optional[int]:
    if not isinstance(event, dict):
        return None
    value = event.get("timestamp")
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value == value and abs(value) < 1e15:
        return int(value)
    return None


def _number(value: Any) -> Optional[float]:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


# ---------------------------------------------------------------------------------------------
# The converter


class _PendingInput:
    __slots__ = ("node_id", "event", "keystrokes")

    def __init__(self, node_id: int, event: dict) -> None:
        self.node_id = node_id
        self.event = event
        self.keystrokes = 1


class _Thrash:
    """Counts pointer direction reversals per axis; a reversal needs `min_travel` px of travel
    back from the furthest point, so jitter does not count."""

    def __init__(self, options: RrwebOptions) -> None:
        self.window = options.thrash_window_ms
        self.needed = options.thrash_min_reversals
        self.travel = options.thrash_min_travel_px
        self.reset()

    def reset(self) -> None:
        # Per axis: [furthest point, direction (+1/-1/0), reversal times].
        self.axes = [[None, 0, deque()], [None, 0, deque()]]
        self.quiet_until = -1

    def feed(self, t: int, x: float, y: float) -> bool:
        """True when this point completes a thrash burst (enough reversals on one axis)."""
        burst = False
        for axis, value in ((self.axes[0], x), (self.axes[1], y)):
            extreme, direction, reversals = axis
            if extreme is None:
                axis[0] = value
                continue
            delta = value - extreme
            if (direction >= 0 and delta > 0) or (direction <= 0 and delta < 0):
                if direction == 0 and abs(delta) < self.travel:
                    continue
                axis[0], axis[1] = value, (1 if delta > 0 else -1)
            elif abs(delta) >= self.travel:
                axis[0], axis[1] = value, -direction
                reversals.append(t)
            while reversals and t - reversals[0] > self.window:
                reversals.popleft()
            burst = burst or len(reversals) >= self.needed
        if burst and t >= self.quiet_until:
            for axis in self.axes:
                axis[2].clear()
            self.quiet_until = t + self.window
            return True
        return False


class _Converter:
    def __init__(self, session_id: str, user: Optional[dict], options: RrwebOptions) -> None:
        self.session_id = session_id
        self.user = dict(user) if isinstance(user, dict) else None
        self.options = options
        self.dom = _Dom()
        self.url: Optional[str] = None
        self.out: list[dict] = []
        self.index = 0
        self.pending_input: Optional[_PendingInput] = None
        self.scroll_bursts: dict[Any, tuple[dict, int]] = {}
        self.selection: Optional[tuple[dict, int]] = None
        self.touch_starts: dict[Any, tuple[int, float, float]] = {}
        self.last_tap: Optional[tuple[dict, int, float, float]] = None
        self.thrash = _Thrash(options)

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
        if self.user:
            event["user"] = dict(self.user)
        self.out.append(event)
        return event

    def target(self, node_id: Any) -> tuple[Optional[dict], Optional[int]]:
        resolved_id, node = self.dom.element_for(node_id)
        if node is None:
            return None, None
        target = {"selector": self.dom.selector(node), "text": self.dom.text(node, self.options.text_max_chars)}
        target = {k: v for k, v in target.items() if v is not None}
        return (target or None), resolved_id

    # -- driving --------------------------------------------------------------------------------

    def run(self, events: list) -> list[dict]:
        for index, event in enumerate(events):
            self.index = index
            timestamp = _timestamp(event)
            if timestamp is None:
                continue
            try:
                self.handle(event, timestamp)
            except (TypeError, ValueError, AttributeError, KeyError, IndexError, RecursionError):
                continue  # a malformed event is skipped; the rest of the recording still maps
        self.flush_input()
        self.out.sort(key=lambda e: e["timestamp"])  # stable: same-ms events keep recording order
        return self.out

    def handle(self, event: dict, timestamp: int) -> None:
        kind = event.get("type")
        data = event.get("data")
        if not isinstance(data, dict):
            return
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

    def meta(self, data: dict, timestamp: int) -> None:
        href = data.get("href")
        if not isinstance(href, str) or not href:
            return
        self.new_page()
        self.url = href
        properties = {k: data[k] for k in ("width", "height") if isinstance(data.get(k), int)}
        self.emit("navigate", timestamp, properties=properties or None)

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
        elif source in (_SRC_MOUSE_MOVE, _SRC_TOUCH_MOVE):
            self.moves(data, timestamp)
        elif source == _SRC_MOUSE_INTERACTION:
            self.interaction(data, timestamp)
        elif source == _SRC_SCROLL:
            self.scroll(data, timestamp)
        elif source == _SRC_INPUT:
            self.input(data, timestamp)
        elif source == _SRC_SELECTION:
            self.select(data, timestamp)
        elif source == _SRC_LOG:
            self.console(data, timestamp)

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
            if self.is_tap(start, timestamp, x, y):
                event = self.click(node_id, timestamp, x, y, pointer="touch")
                self.last_tap = (event, timestamp, x or 0.0, y or 0.0)
        elif action == _MI_TOUCH_CANCEL:
            self.touch_starts.pop(node_id, None)
        elif action == _MI_FOCUS:
            self.leave_field(node_id)
        elif action == _MI_BLUR:
            if self.pending_input is not None and self.pending_input.node_id == node_id:
                self.flush_input()

    def is_tap(self, start: Optional[tuple[int, float, float]], timestamp: int,
               x: Optional[float], y: Optional[float]) -> bool:
        if start is None:
            return True  # a lone touch end: the start was not recorded
        started, x0, y0 = start
        limit = self.options.tap_max_move_px
        return (timestamp - started <= self.options.tap_max_duration_ms
                and abs((x or 0.0) - x0) <= limit and abs((y or 0.0) - y0) <= limit)

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
        return self.emit("click", timestamp, target=target, properties=properties)

    def moves(self, data: dict, timestamp: int) -> None:
        positions = data.get("positions")
        if not isinstance(positions, list):
            return
        points = []
        for position in _dicts(positions):
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
        if target == {"selector": "document"}:
            target = None  # the page itself: the url says which
        properties = {"node_id": node_id, "scroll_count": 1, "duration_ms": 0, "from_x": x, "from_y": y,
                      "x": x, "y": y}
        event = self.emit("scroll", timestamp, target=target, properties=properties)
        self.scroll_bursts[node_id] = (event, timestamp)

    def select(self, data: dict, timestamp: int) -> None:
        ranges = [r for r in _dicts(data.get("ranges"))]
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
            self.selection = (event, timestamp)
            return
        event = self.emit("highlight", timestamp, target=target, value=text, properties={"changes": 1})
        self.selection = (event, timestamp)

    def selected_text(self, selection_range: dict) -> Optional[str]:
        node = self.dom.nodes.get(selection_range.get("start"))
        if node is None or node.kind != _NODE_TEXT:
            return None
        start = selection_range.get("startOffset")
        start = start if isinstance(start, int) else 0
        end = selection_range.get("endOffset") if selection_range.get("end") == selection_range.get("start") else None
        return _trim(node.text[start:end if isinstance(end, int) else None], self.options.text_max_chars * 4)

    # -- inputs ---------------------------------------------------------------------------------

    def input(self, data: dict, timestamp: int) -> None:
        node_id = data.get("id")
        if not isinstance(node_id, int) or node_id < 0:
            return  # rrweb emits id -1 for inputs it could not attribute
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

    # -- errors and custom events ---------------------------------------------------------------

    def plugin(self, data: dict, timestamp: int) -> None:
        name = data.get("plugin")
        payload = data.get("payload")
        if name == _CONSOLE_PLUGIN and isinstance(payload, dict):
            self.console(payload, timestamp)
        elif name == _NETWORK_PLUGIN:
            self.network(payload, timestamp)

    def console(self, record: dict, timestamp: int) -> None:
        level = record.get("level")
        if not isinstance(level, str) or level.lower() not in _ERROR_LEVELS:
            return
        message = _console_message(record.get("payload")) or f"console.{level.lower()}"
        properties: dict[str, Any] = {"level": level.lower()}
        trace = record.get("trace")
        if isinstance(trace, list) and trace:
            properties["trace"] = [str(line) for line in trace[:5]]
        self.emit("console-error", timestamp, error={"message": message}, properties=properties)

    def network(self, payload: Any, timestamp: int) -> None:
        failed = [r for r in _network_requests(payload) if _request_failed(r)]
        for k, request in enumerate(failed):
            status = _status(request)
            method = request.get("method")
            method = method.upper() if isinstance(method, str) and method else "GET"
            url = request.get("url") or request.get("name")
            url = url if isinstance(url, str) else None
            reason = request.get("error") or request.get("statusText")
            message = f"{method} {url or '(unknown url)'} " + (
                f"failed with status {status}" if status else "failed" + (f": {reason}" if isinstance(reason, str) and reason else ""))
            error = {"message": message, "status": status if status is not None else 0, "method": method,
                     "request_url": url}
            properties = {k2: request[k2] for k2 in ("initiatorType", "type", "duration") if k2 in request
                          and isinstance(request[k2], (str, int, float)) and not isinstance(request[k2], bool)}
            self.emit("network-error", timestamp, suffix=f"-{k}" if k else "", error=error,
                      properties=properties or None)

    def custom(self, data: dict, timestamp: int) -> None:
        tag = data.get("tag")
        if not isinstance(tag, str) or not tag.strip():
            return
        payload = data.get("payload")
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


def _console_message(args: Any) -> Optional[str]:
    """rrweb's console plugin stores each argument JSON-stringified: '"Uncaught TypeError: x"'."""
    if isinstance(args, str):
        args = [args]
    if not isinstance(args, list):
        return None
    parts = []
    for arg in args[:5]:
        if isinstance(arg, str):
            try:
                decoded = json.loads(arg)
            except ValueError:
                decoded = arg
            arg = decoded if isinstance(decoded, str) else arg
        parts.append(arg if isinstance(arg, str) else json.dumps(arg, default=str))
    message = " ".join(p for p in parts if p).strip()
    return message[:1000] or None


def _network_requests(payload: Any) -> list[dict]:
    if isinstance(payload, list):
        return [r for r in payload if isinstance(r, dict)]
    if not isinstance(payload, dict):
        return []
    if isinstance(payload.get("requests"), list):
        return [r for r in payload["requests"] if isinstance(r, dict)]
    if isinstance(payload.get("data"), dict):
        return [payload["data"]]
    if "url" in payload or "name" in payload:
        return [payload]
    return []


def _status(request: dict) -> Optional[int]:
    for key in ("status", "responseStatus", "statusCode"):
        value = request.get(key)
        if isinstance(value, bool):
            continue
        if isinstance(value, (int, float)):
            return int(value)
        if isinstance(value, str) and value.isdigit():
            return int(value)
    return None


def _request_failed(request: dict) -> bool:
    status = _status(request)
    if status is not None:
        return status >= 400 or status == 0
    return bool(request.get("error")) or request.get("failed") is True or request.get("aborted") is True


# ---------------------------------------------------------------------------------------------
# Entry point


def rrweb_to_events(rrweb_events: list[dict], session_id: Optional[str] = None, user: Optional[dict] = None,
                    options: RrwebOptions = DEFAULT_OPTIONS) -> list[dict]:
    """Contract event dicts (see schemas.events.Event) for one recording, sorted by timestamp.

    The session id is the one the recording's events carry (`sessionId`), else `session_id`,
    else "rrweb-<first timestamp>". `user` ({id, email}) is attached to every event. Event ids are
    "rr-<session>-<index of the rrweb event>" (a suffix "-k" for the k-th failed request of one
    network event), so converting the same recording twice gives the same ids.
    """
    if not isinstance(rrweb_events, list):
        raise RrwebError(f"not an rrweb recording: expected a list of rrweb events, got {type(rrweb_events).__name__}")
    if rrweb_events and not any(_looks_like_rrweb_event(e) for e in rrweb_events):
        raise RrwebError("not an rrweb recording: no item has a numeric 'type' and 'timestamp'")
    chosen = _session_id_of_events(rrweb_events) or (str(session_id) if session_id else None)
    if chosen is None:
        first = next((_timestamp(e) for e in rrweb_events if _timestamp(e) is not None), None)
        if first is None:
            return []
        chosen = f"rrweb-{first}"
    return _Converter(chosen, user, options).run(rrweb_events)


def options_from_settings(settings) -> RrwebOptions:
    """The mapping thresholds that are pipeline settings (mouse-thrash detection)."""
    return RrwebOptions(thrash_window_ms=settings.thrash_window_ms,
                        thrash_min_reversals=settings.thrash_min_direction_changes)

"""Recording formats: find the rrweb events, and what the wrapper says about the session.

Formats read (each learned from its recorder's or player's code, see tests/fixtures/*/SOURCES.md):
- `rrweb`: a bare array of rrweb events, or a wrapper `{"events"|"result"|"snapshots"|"recording"|
  "data": ...}` (nested too).
- `rrweb-extension`: rrweb's browser extension download, `{"session": {"id", "name", ...},
  "events": [...]}` (rrweb packages/web-extension/src/utils/storage.ts).
- `posthog-export`: PostHog's "export recording" file, `{"version": "2023-04-28", "data": {"id",
  "person", "snapshots": [...]}}`, and the older `"2022-12-02"` with `snapshotsByWindowId`
  (posthog frontend/src/scenes/session-recordings/file-playback/types.ts).
- `posthog-snapshots`: PostHog's snapshot API, `{"snapshot_data_by_window_id": {window: [...]}}`,
  and its blob lines `[window_id, event]` (JSON array or JSON lines).
- `pagespy`: a PageSpy offline log, a JSON array of `{type, timestamp, data}` whose `data` is
  zlib-deflated JSON as a latin-1 string (HuolalaTech/page-spy-web LogReplayer), holding rrweb
  events plus console, network, storage, system and meta entries.

PostHog's compressed events (posthog-js `compressEvent`, `"cv": "2024-10"`): a full snapshot's
`data`, and a mutation's `adds`/`removes`/`texts`/`attributes` (a style-sheet rule's `adds`/
`removes`), are gzip bytes stored as a latin-1 string; they are inflated here, as PostHog's own
player does (frontend .../snapshot-processing/decompress.ts).
"""
from __future__ import annotations

import gzip
import json
import zlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Optional, Union

from replaylens.streams.rrweb.options import RrwebError

RecordingInput = Union[bytes, bytearray, str, list, dict]

FULL_SNAPSHOT, INCREMENTAL = 2, 3
SRC_MUTATION, SRC_STYLESHEET_RULE = 0, 8
POSTHOG_COMPRESSION = "2024-10"
_MUTATION_FIELDS = ("adds", "removes", "texts", "attributes")
_STYLESHEET_FIELDS = ("adds", "removes")

# Wrapper keys, in the order they are tried; values may nest (PostHog: {"result": {"snapshots": ...}}).
_WRAPPER_KEYS = ("events", "result", "snapshots", "recording", "data", "rrwebEvents", "rrweb_events")
_WINDOWED_KEYS = ("snapshot_data_by_window_id", "snapshotsByWindowId")
_SESSION_KEYS = ("sessionId", "session_id", "$session_id", "sessionID")
_POSTHOG_EXPORT_VERSIONS = frozenset({"2023-04-28", "2022-12-02"})
_PAGESPY_TYPES = frozenset({"rrweb-event", "console", "network", "storage", "system", "meta"})
_MAX_WRAPPER_DEPTH = 4

# PostHog person properties → contract device and location.
_DEVICE_PROPERTIES = (("type", "$device_type"), ("os", "$os"), ("browser", "$browser"))
_LOCATION_PROPERTIES = (("country", "$geoip_country_name"), ("region", "$geoip_subdivision_1_name"),
                        ("city", "$geoip_city_name"))
_USER_AGENT_PROPERTIES = ("$raw_user_agent", "$user_agent")


@dataclass
class Recording:
    """One recording, unwrapped: its rrweb events and what its wrapper says about the session."""

    format: str
    events: list[dict]
    session_id: Optional[str] = None
    user: Optional[dict] = None
    device: Optional[dict] = None
    location: Optional[dict] = None
    # PageSpy's own console/network entries: (kind, timestamp, decoded data).
    side_entries: list[tuple[str, int, dict]] = field(default_factory=list)
    page_url: Optional[str] = None
    skipped: Counter = field(default_factory=Counter)


# -- decoding ---------------------------------------------------------------------------------

def _decode(data: Union[bytes, bytearray, str]) -> Any:
    try:
        import orjson
        loads = orjson.loads
    except ImportError:  # pragma: no cover - orjson is a dependency; json keeps this module pure
        loads = json.loads
    try:
        return loads(data)
    except (ValueError, TypeError) as exc:
        lines = _json_lines(data)
        if lines is not None:
            return lines
        raise RrwebError(f"not an rrweb recording: the input is not JSON ({exc})") from None


def _json_lines(data: Union[bytes, bytearray, str]) -> Optional[list]:
    """PostHog's blob files are JSON lines, one `[window_id, event]` per line."""
    text = data.decode("utf-8", "replace") if isinstance(data, (bytes, bytearray)) else data
    rows = [line for line in text.splitlines() if line.strip()]
    if len(rows) < 2:
        return None
    try:
        return [json.loads(line) for line in rows]
    except ValueError:
        return None


def parse(data: RecordingInput) -> Any:
    if isinstance(data, (bytes, bytearray, str)):
        return _decode(data)
    if isinstance(data, (list, dict)):
        return data
    raise RrwebError(f"not an rrweb recording: expected JSON text, a list or a dict, got {type(data).__name__}")


def timestamp_of(event: Any) -> Optional[int]:
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


def looks_like_rrweb_event(item: Any) -> bool:
    return (isinstance(item, dict) and isinstance(item.get("type"), int)
            and not isinstance(item.get("type"), bool) and timestamp_of(item) is not None)


# -- PostHog compression ------------------------------------------------------------------------

def _inflate_latin1(value: Any) -> Any:
    """gzip bytes stored one byte per character (posthog-js strFromU8(gzipSync(...), true))."""
    if not isinstance(value, str):
        return value  # already plain (small events are sent uncompressed)
    return json.loads(gzip.decompress(value.encode("latin-1")))


def decompress_event(event: dict, skipped: Counter) -> Optional[dict]:
    """The event with PostHog-compressed parts inflated; None (and counted) when it cannot be."""
    version = event.get("cv")
    if version is None:
        return event
    if version != POSTHOG_COMPRESSION:
        skipped[f"unknown-compression:{version}"] += 1
        return None
    try:
        kind, data = event.get("type"), event.get("data")
        if kind == FULL_SNAPSHOT and isinstance(data, str):
            return {**event, "data": _inflate_latin1(data)}
        if kind == INCREMENTAL and isinstance(data, dict):
            names = {SRC_MUTATION: _MUTATION_FIELDS, SRC_STYLESHEET_RULE: _STYLESHEET_FIELDS}.get(data.get("source"), ())
            return {**event, "data": {**data, **{n: _inflate_latin1(data[n]) for n in names if n in data}}}
        return event
    except (UnicodeEncodeError, OSError, EOFError, zlib.error, ValueError) as exc:
        skipped[f"undecodable-compressed:{type(exc).__name__}"] += 1
        return None


# -- unwrapping ---------------------------------------------------------------------------------

def _find_event_list(value: Any, depth: int = 0) -> Optional[list]:
    if isinstance(value, list):
        return value
    if not isinstance(value, dict) or depth > _MAX_WRAPPER_DEPTH:
        return None
    for key in _WINDOWED_KEYS:
        windows = value.get(key)
        if isinstance(windows, dict):
            merged = [{**e, "windowId": window} if isinstance(e, dict) and "windowId" not in e else e
                      for window, events in windows.items() if isinstance(events, list) for e in events]
            return sorted(merged, key=lambda e: timestamp_of(e) or 0)
    for key in _WRAPPER_KEYS:
        if key in value:
            found = _find_event_list(value[key], depth + 1)
            if found is not None:
                return found
    return None


def _unpair(items: list) -> list:
    """PostHog blob rows `[window_id, event]` become events carrying their `windowId`."""
    out = []
    for item in items:
        if (isinstance(item, list) and len(item) == 2 and isinstance(item[0], str)
                and isinstance(item[1], dict)):
            out.append({**item[1], "windowId": item[0]})
        else:
            out.append(item)
    return out


def _is_paired(items: list) -> bool:
    return bool(items) and isinstance(items[0], list) and len(items[0]) == 2 and isinstance(items[0][0], str)


def _is_pagespy(items: list) -> bool:
    return bool(items) and all(isinstance(i, dict) and isinstance(i.get("type"), str)
                               and i["type"] in _PAGESPY_TYPES for i in items[:20])


def _clean(events: list, skipped: Counter) -> list[dict]:
    """rrweb-shaped, decompressed events; the rest counted. Raises when nothing is rrweb."""
    kept = []
    for item in events:
        if not looks_like_rrweb_event(item):
            skipped["not-an-rrweb-event"] += 1
            continue
        event = decompress_event(item, skipped)
        if event is not None:
            kept.append(event)
    if events and not kept and not skipped.keys() - {"not-an-rrweb-event"}:
        raise RrwebError("not an rrweb recording: no item has a numeric 'type' and 'timestamp'")
    return kept


def read_recording(data: RecordingInput) -> Recording:
    """Detect the format and unwrap one recording. Raises RrwebError when it is not one."""
    parsed = parse(data)
    if isinstance(parsed, list):
        if _is_pagespy(parsed):
            return _read_pagespy(parsed)
        if _is_paired(parsed):
            recording = Recording("posthog-snapshots", [])
            recording.events = _clean(_unpair(parsed), recording.skipped)
            return recording
    if isinstance(parsed, dict):
        if parsed.get("version") in _POSTHOG_EXPORT_VERSIONS and isinstance(parsed.get("data"), dict):
            return _read_posthog_export(parsed["data"])
        session = parsed.get("session")
        if isinstance(session, dict) and isinstance(parsed.get("events"), list):
            recording = Recording("rrweb-extension", [], session_id=_id(session.get("id")))
            recording.events = _clean(parsed["events"], recording.skipped)
            return recording
    events = _find_event_list(parsed)
    if events is None:
        raise RrwebError("not an rrweb recording: no event list found (expected a JSON array, or an object "
                         "with 'events', 'result' or 'snapshots')")
    windowed = isinstance(parsed, dict) and any(isinstance(parsed.get(k), dict) for k in _WINDOWED_KEYS)
    recording = Recording("posthog-snapshots" if windowed else "rrweb", [])
    recording.events = _clean(_unpair(events), recording.skipped)
    recording.session_id = wrapper_session_id(parsed) or events_session_id(recording.events)
    return recording


def _read_posthog_export(data: dict) -> Recording:
    snapshots = data.get("snapshots")
    if not isinstance(snapshots, list):
        snapshots = _find_event_list({"snapshotsByWindowId": data.get("snapshotsByWindowId")}) or []
    recording = Recording("posthog-export", [], session_id=_id(data.get("id")))
    recording.events = _clean(snapshots, recording.skipped)
    person = data.get("person")
    if isinstance(person, dict):
        recording.user, recording.device, recording.location = person_context(person)
    return recording


def person_context(person: dict) -> tuple[Optional[dict], Optional[dict], Optional[dict]]:
    """PostHog person → (user, device, location). Only fields the person carries."""
    properties = person.get("properties") if isinstance(person.get("properties"), dict) else {}
    listed = person.get("distinct_ids")
    distinct_ids = [d for d in listed if isinstance(d, str) and d] if isinstance(listed, list) else []
    user: dict[str, Any] = {}
    if distinct_ids:
        user["id"] = distinct_ids[0]
    email = properties.get("email") or properties.get("$email")
    if isinstance(email, str) and "@" in email:
        user["email"] = email  # identity: kept on the session, masked where text leaves it
    device = {key: properties[prop] for key, prop in _DEVICE_PROPERTIES
              if isinstance(properties.get(prop), str) and properties[prop]}
    agent = next((properties[p] for p in _USER_AGENT_PROPERTIES if isinstance(properties.get(p), str)), None)
    if agent:
        device["user_agent"] = agent
    location = {key: properties[prop] for key, prop in _LOCATION_PROPERTIES
                if isinstance(properties.get(prop), str) and properties[prop]}
    return user or None, device or None, location or None


def _read_pagespy(entries: list) -> Recording:
    recording = Recording("pagespy", [])
    rrweb_events = []
    for entry in entries:
        kind, stamp = entry.get("type"), timestamp_of(entry)
        try:
            data = _inflate_pagespy(entry.get("data"))
        except (UnicodeEncodeError, zlib.error, ValueError) as exc:
            recording.skipped[f"undecodable-pagespy:{type(exc).__name__}"] += 1
            continue
        if kind == "rrweb-event":
            rrweb_events.append(data)
        elif kind == "meta" and isinstance(data, dict):
            _pagespy_meta(recording, data)
        elif kind in ("console", "network") and isinstance(data, dict) and stamp is not None:
            recording.side_entries.append((kind, stamp, data))
        elif kind == "system" and isinstance(data, dict):
            agent = (data.get("system") or {}).get("ua") if isinstance(data.get("system"), dict) else None
            if isinstance(agent, str) and agent and not (recording.device or {}).get("user_agent"):
                recording.device = {**(recording.device or {}), "user_agent": agent}
        else:
            recording.skipped[f"pagespy-{kind}"] += 1
    recording.events = _clean(rrweb_events, recording.skipped)
    return recording


def _inflate_pagespy(data: Any) -> Any:
    """zlib-deflated JSON as a latin-1 string (strFromU8(unzlibSync(strToU8(s, true)))); plain
    objects where zlib was unavailable (mini programs)."""
    if isinstance(data, str):
        return json.loads(zlib.decompress(data.encode("latin-1")))
    return data


def _pagespy_meta(recording: Recording, meta: dict) -> None:
    url, agent = meta.get("url"), meta.get("ua")
    if isinstance(url, str) and url:
        recording.page_url = url
    if isinstance(agent, str) and agent:
        recording.device = {**(recording.device or {}), "user_agent": agent}


# -- session identity ---------------------------------------------------------------------------

def _id(value: Any) -> Optional[str]:
    if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value):
        return str(value)
    return None


def wrapper_session_id(parsed: Any) -> Optional[str]:
    """The session id a wrapper names on the way down to its events."""
    node: Any = parsed
    for _ in range(_MAX_WRAPPER_DEPTH + 1):
        if not isinstance(node, dict):
            break
        for key in _SESSION_KEYS:
            found = _id(node.get(key))
            if found:
                return found
        node = next((node[k] for k in _WRAPPER_KEYS if isinstance(node.get(k), (dict, list))), None)
    return None


def events_session_id(events: Any) -> Optional[str]:
    """The session id old rrweb recorders put on every event (`sessionId`)."""
    for event in events if isinstance(events, list) else ():
        if isinstance(event, dict):
            for key in _SESSION_KEYS:
                found = _id(event.get(key))
                if found:
                    return found
    return None

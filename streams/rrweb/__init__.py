"""rrweb recordings → contract events (schemas/events.py).

- formats.py: recognise and unwrap recording files (plain rrweb, rrweb extension, PostHog exports
  and snapshots with their compressed events, PageSpy offline logs) and their session identity;
- dom.py: the node-id → element index that turns a click on node 1147 into a readable target;
- gestures.py: mouse thrash, taps, and what the page did after each click;
- plugins.py: console and network records (rrweb plugins, PageSpy entries);
- mapping.py: the event mapping itself and the entry points.
"""
from replaylens.streams.rrweb.mapping import (
    MappedRecording,
    ingest_recording,
    load_recording,
    map_recording,
    recording_session_id,
    rrweb_to_events,
)
from replaylens.streams.rrweb.options import RrwebError, RrwebOptions, options_from_settings

__all__ = [
    "MappedRecording",
    "RrwebError",
    "RrwebOptions",
    "ingest_recording",
    "load_recording",
    "map_recording",
    "options_from_settings",
    "recording_session_id",
    "rrweb_to_events",
]

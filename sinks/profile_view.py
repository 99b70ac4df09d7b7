"""What a summary profile lets a summarizer see of one closed session (pure).

Semantics follow Fullstory's visit profile: the event filter runs FIRST, then the
slice, so "LAST 200 events of types X" means the last 200 *relevant* events.

The kept span is the time range the slice covers. Filtering types alone does not
cut time (the span stays the whole session); a slice that drops events at one end
moves that end of the span to the nearest kept event (or to `start_timestamp` in
TIMESTAMP mode). Signals and pages are then kept by that span.
"""
from __future__ import annotations

from dataclasses import dataclass
from operator import itemgetter
from typing import Any, Optional

from replaylens.schemas.profiles import CONTEXT_ELEMENTS, EventFilter, SliceOptions, SummaryProfile
from replaylens.schemas.sessions import window_id_of

CUSTOM = "custom"
_TIMESTAMP = itemgetter("timestamp")


@dataclass
class SessionView:
    session_id: str
    window_id: str
    part: int
    started_at: int
    ended_at: int
    duration_ms: int
    events: list[dict[str, Any]]
    signals: list[dict[str, Any]]
    pages: list[dict[str, Any]]
    context: dict[str, Any]
    comparisons: list[dict[str, Any]]
    total_events: int

    def in_span(self, timestamp: int) -> bool:
        return self.started_at <= timestamp <= self.ended_at


def event_matches(event: dict[str, Any], names: frozenset[str]) -> bool:
    """True when the event's type, or for a custom event its name or "custom", is named."""
    etype = event.get("type")
    if etype == CUSTOM:
        return CUSTOM in names or event.get("name") in names
    return etype in names


def passes_filter(event: dict[str, Any], filt: EventFilter) -> bool:
    if filt.include_types is not None:
        return event_matches(event, frozenset(filt.include_types))
    if filt.exclude_types is not None:
        return not event_matches(event, frozenset(filt.exclude_types))
    return True


def filter_events(events: list[dict[str, Any]], filt: EventFilter) -> list[dict[str, Any]]:
    """The events `filt` keeps (all of them, as is, when it names no types)."""
    if filt.include_types is not None:
        names = frozenset(filt.include_types)
        return [e for e in events if event_matches(e, names)]
    if filt.exclude_types is not None:
        names = frozenset(filt.exclude_types)
        return [e for e in events if not event_matches(e, names)]
    return events


def signal_passes(signal: dict[str, Any], filt: EventFilter) -> bool:
    # Signal types are event type names (rage-click, dead-click, ...).
    return passes_filter({"type": signal.get("type")}, filt)


def _slice_forward(events: list[dict[str, Any]], opts: SliceOptions) -> list[dict[str, Any]]:
    if events and opts.duration_limit_ms is not None:
        end = events[0]["timestamp"] + opts.duration_limit_ms
        events = [e for e in events if e["timestamp"] <= end]
    if opts.event_limit is not None:
        events = events[: opts.event_limit]
    return events


def _slice_backward(events: list[dict[str, Any]], opts: SliceOptions) -> list[dict[str, Any]]:
    if events and opts.duration_limit_ms is not None:
        start = events[-1]["timestamp"] - opts.duration_limit_ms
        events = [e for e in events if e["timestamp"] >= start]
    if opts.event_limit is not None:
        events = events[-opts.event_limit:] if opts.event_limit < len(events) else events
    return events


def slice_events(events: list[dict[str, Any]], opts: SliceOptions, started_at: int,
                 ended_at: int) -> tuple[list[dict[str, Any]], int, int]:
    """The kept events and the kept span (start, end) for time-ordered `events`."""
    if opts.mode == "LAST":
        kept = _slice_backward(events, opts)
        dropped_front = len(kept) < len(events)
        span_start = kept[0]["timestamp"] if (kept and dropped_front) else started_at
        return kept, span_start, ended_at
    span_start = started_at
    candidates = events
    if opts.mode == "TIMESTAMP":
        span_start = max(started_at, opts.start_timestamp)  # type: ignore[arg-type]
        candidates = [e for e in events if e["timestamp"] >= opts.start_timestamp]
    kept = _slice_forward(candidates, opts)
    dropped_back = len(kept) < len(candidates)
    span_end = kept[-1]["timestamp"] if (kept and dropped_back) else ended_at
    return kept, span_start, span_end


def _without_keys(events: list[dict[str, Any]], dropped: frozenset[str]) -> list[dict[str, Any]]:
    """`events` themselves when nothing is dropped: build_view hands a list of its own (its sorted
    copy, or a slice of it), never the session's."""
    if not dropped:
        return events
    # Shallow copies: the session's own dicts are never mutated.
    return [{k: v for k, v in e.items() if k not in dropped} for e in events]


def select_context(context: Optional[dict[str, Any]], selected: list[str]) -> dict[str, Any]:
    context = context or {}
    return {name: context[name] for name in selected if context.get(name) is not None}


_CONTEXTS: dict[int, tuple[SummaryProfile, list[str], frozenset[str]]] = {}
MEMO_ENTRIES = 1000


def _context_choice(profile: SummaryProfile) -> tuple[list[str], frozenset[str]]:
    """(the context elements the profile selects, the others), remembered per profile object
    (profiles are loaded once and not changed in place)."""
    known = _CONTEXTS.get(id(profile))
    if known is None or known[0] is not profile:
        selected = profile.context.selected()
        if len(_CONTEXTS) >= MEMO_ENTRIES:
            _CONTEXTS.clear()
        known = _CONTEXTS[id(profile)] = (profile, selected, frozenset(CONTEXT_ELEMENTS) - set(selected))
    return known[1], known[2]


def build_view(session: dict[str, Any], profile: SummaryProfile) -> SessionView:
    """Filter, then slice, one closed-session dict as `profile` says. No I/O, no mutation."""
    all_events = sorted(session.get("events") or (), key=_TIMESTAMP)
    filt = profile.events
    relevant = filter_events(all_events, filt)
    started_at, ended_at = int(session["started_at"]), int(session["ended_at"])
    kept, span_start, span_end = slice_events(relevant, profile.slice, started_at, ended_at)

    # Per-event copies of unselected context (user, org, ...) must not leak either.
    selected, unselected = _context_choice(profile)
    every_type = filt.include_types is None and filt.exclude_types is None
    signals = [
        dict(s) for s in session.get("signals") or ()
        if (every_type or signal_passes(s, filt)) and span_start <= s["timestamp"] <= span_end
    ]
    signals.sort(key=_TIMESTAMP)
    # A page left exactly when the span starts is not in it; a zero-length page inside is.
    pages = [
        dict(p) for p in session.get("pages") or ()
        if p["entered_at"] <= span_end and (p["left_at"] > span_start or p["entered_at"] >= span_start)
    ]
    context = select_context(session.get("context"), selected)
    return SessionView(
        session_id=session["session_id"],
        window_id=window_id_of(session),
        part=int(session.get("part") or 1),
        started_at=span_start,
        ended_at=span_end,
        duration_ms=max(0, span_end - span_start),
        events=_without_keys(kept, unselected),
        signals=signals,
        pages=pages,
        context=context,
        comparisons=list(session.get("comparisons") or ()),  # read only: the summary copies them
        total_events=int(session.get("event_count") or len(all_events)),
    )

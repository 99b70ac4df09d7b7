"""Session windows over one partition's events, in event time. Pure: no Kafka, no I/O.

Rules (README 'Sessionization'):
- Events of one session id that lie within `gap_ms` of each other form one session window; an
  event that bridges two open windows merges them (as Kafka Streams and Flink session windows do).
- A window closes by inactivity once the watermark passes `end + gap + grace`: no event that is
  still on time (ts >= watermark - grace) could then touch it, so out-of-order arrival within the
  grace period never changes what is emitted.
- A session-end event ends its window at that event; the window closes once the watermark passes
  `end + grace` (events after it start a new session).
- Limits split a window into linked parts at once: `max_events`, `max_duration_ms`.
- Duplicates (same event_id within the open session) are dropped.
- Event time (README 'Guarantees'), so that one sender cannot drag it forward:
  * The watermark is the `min_senders`-th highest latest event time among distinct session ids,
    and never passes the wall clock: a few senders with clocks ahead (inside the future
    tolerance) cannot move it, and so cannot close everyone else's sessions early; neither can a
    few outliers in a backfill. While fewer senders were seen it moves only on a quiet partition
    (to the lowest of their times, then on wall time). It only rises.
  * Lateness is per session, never against the watermark alone: an event is late only when its
    session id has a part that already closed through that time (it is in a published session).
    An event of a session that never existed (or was forgotten) opens a session, whatever its age.
  * A window that receives events already behind `watermark - grace` (a whole rrweb recording
    sent when its session ended, a backlog) is placed by its own time and also waits `grace` of
    wall time after its last such arrival before closing, so a recording read over several
    batches stays one session.
  * `advance(wall_ms)` lets wall-clock time move the watermark on while the partition is quiet,
    so idle sessions close without new traffic (Flink's idleness); `pause_wall_clock()` stops
    that while the worker cannot read from the broker, so an outage makes nothing late.
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Any, Container, Iterable, Optional

import orjson

from replaylens.streams.ingest import Accepted
from replaylens.streams.pages import page_visits
from replaylens.streams.signals import SignalRules, detect_signals


@dataclass(frozen=True, slots=True)
class SessionRules:
    gap_ms: int = 30 * 60_000
    grace_ms: int = 30_000
    max_duration_ms: int = 12 * 3_600_000
    max_events: int = 10_000
    # Distinct session ids that must reach an event time before the watermark does.
    min_senders: int = 5

    @classmethod
    def from_settings(cls, s: Any) -> "SessionRules":
        return cls(s.session_gap_ms, s.session_grace_ms, s.session_max_duration_ms, s.session_max_events,
                   s.watermark_min_sessions)


# A buffered event: (timestamp, arrival sequence, event_id, type, normalized JSON).
Buffered = tuple[int, int, str, str, str]


@dataclass(slots=True)
class Window:
    start: int
    end: int
    events: list[Buffered] = field(default_factory=list)
    ids: set[str] = field(default_factory=set)
    ended: bool = False  # a session-end event fixed its end
    part: int = 1
    previous_window_id: Optional[str] = None
    # Wall time before which it may not close: set when it receives events already behind the
    # watermark (a recording or backlog arriving at once), so the rest of them can still join.
    hold_until_wall: Optional[int] = None

    def touches(self, ts: int, gap: int) -> bool:
        if self.ended and ts > self.end:
            return False
        return self.start - gap <= ts <= self.end + gap

    def add(self, ev: Buffered) -> None:
        self.events.append(ev)
        self.ids.add(ev[2])
        ts = ev[0]
        if ts < self.start:
            self.start = ts
        if ts > self.end and not self.ended:
            self.end = ts

    def absorb(self, other: "Window") -> None:
        self.events.extend(other.events)
        self.ids |= other.ids
        self.start = min(self.start, other.start)
        self.end = max(self.end, other.end) if not self.ended else self.end
        self.ended = self.ended or other.ended
        if other.part > 1 and self.part == 1:
            self.part, self.previous_window_id = other.part, other.previous_window_id
        if other.hold_until_wall is not None:
            self.hold_until_wall = max(self.hold_until_wall or 0, other.hold_until_wall)


@dataclass(slots=True)
class KeyState:
    """Everything open for one session id."""

    windows: list[Window] = field(default_factory=list)
    closed_until: Optional[int] = None  # end of the last window closed before its gap ran out
    next_part: int = 1
    previous_window_id: Optional[str] = None


@dataclass(slots=True)
class Closed:
    """A window ready to be published; `build()` makes the closed-session dict."""

    session_id: str
    window: Window
    reason: str


@dataclass(slots=True)
class AddResult:
    accepted: bool
    duplicate: bool = False
    late_reason: Optional[str] = None


_ACCEPTED = AddResult(True)


def window_id(session_id: str, start: int) -> str:
    return f"{session_id}@{start}"


class Sessionizer:
    """Open sessions of one partition. Not thread-safe; one per partition per worker."""

    def __init__(self, rules: SessionRules = SessionRules()) -> None:
        self.rules = rules
        self.keys: dict[str, KeyState] = {}
        self.watermark: int = 0
        self._wall_at_watermark: Optional[int] = None
        self._wall_now: Optional[int] = None  # latest wall time the caller told us
        self._wall_paused = False  # the source cannot be read: wall time must not count
        self._recent: dict[str, int] = {}  # session id -> latest event time since the last fold
        self._top: dict[str, int] = {}  # the `min_senders` highest latest times, by session id
        self._seq = 0
        self.dirty: set[str] = set()  # session ids changed since the last drain_dirty()
        self._ready: list[Closed] = []  # closed by limits during add(), handed out by take_closed()
        self.buffered_events = 0
        self._busy = False  # events arrived since the last advance()

    # -- adding ---------------------------------------------------------------------------
    def add(self, ev: Accepted, wall_ms: Optional[int] = None, rekeyed: bool = False) -> AddResult:
        """Add one event. Only an already closed part of its session makes it late (never the
        watermark alone), so `rekeyed` (events that took a detour through the re-key topic) is
        kept for the callers' sake and needs no rule of its own."""
        r = self.rules
        ts, sid = ev.timestamp, ev.session_id
        state = self.keys.get(sid)
        if state is not None and len(state.windows) == 1 and ev.type != "session-end":
            # Fast path, the usual case: the next event of the one open session of this id.
            w = state.windows[0]
            if (not w.ended and w.start - r.gap_ms <= ts <= w.end + r.gap_ms
                    and (state.closed_until is None or ts > state.closed_until)
                    and max(w.end, ts) - min(w.start, ts) <= r.max_duration_ms
                    and len(w.events) + 1 < r.max_events):
                if ev.event_id in w.ids:
                    return AddResult(False, duplicate=True)
                self._seq += 1
                w.add((ts, self._seq, ev.event_id, ev.type, ev.json))
                if ts < self.watermark - r.grace_ms:
                    self._hold(w, wall_ms)
                return self._accepted(sid, ts, wall_ms)
        if state is not None:
            for w in state.windows:
                if ev.event_id in w.ids:
                    return AddResult(False, duplicate=True)
            if state.closed_until is not None and ts <= state.closed_until:
                return AddResult(False, late_reason=(
                    f"event at {ts} belongs to a session part of {sid} that already closed "
                    f"(closed through {state.closed_until})"))
        touching = [w for w in state.windows if w.touches(ts, r.gap_ms)] if state else []
        ended = [w for w in touching if w.ended and ts <= w.end]
        if ended:  # it happened before that session's end: it must not bridge past it
            touching = ended[:1]
        if state is None:
            state = self.keys[sid] = KeyState()
        self._seq += 1
        target = self._insert(sid, state, (ts, self._seq, ev.event_id, ev.type, ev.json), touching)
        if ts < self.watermark - r.grace_ms and target is not None:
            self._hold(target, wall_ms)
        return self._accepted(sid, ts, wall_ms)

    def _hold(self, w: Window, wall_ms: Optional[int]) -> None:
        """An event behind the watermark joined `w`: keep it open `grace` of wall time more."""
        if wall_ms is not None:
            w.hold_until_wall = max(w.hold_until_wall or 0, wall_ms + self.rules.grace_ms)

    def _accepted(self, sid: str, ts: int, wall_ms: Optional[int]) -> AddResult:
        self.buffered_events += 1
        self._busy = True
        if wall_ms is not None:
            self._wall_now = wall_ms
        recent = self._recent
        if ts > recent.get(sid, ts - 1):
            recent[sid] = ts
        self.dirty.add(sid)
        return _ACCEPTED

    def _fold_event_time(self) -> None:
        """Move the watermark to the `min_senders`-th highest latest event time among distinct
        session ids, never past the wall clock (a timestamp ahead of it is a sender's clock, not
        time that has passed). Never backwards. Fewer senders move it only on a quiet partition
        (`advance`)."""
        if self._recent:
            top = self._top
            for sid, ts in self._recent.items():
                if ts > top.get(sid, ts - 1):
                    top[sid] = ts
            self._recent = {}
            k = self.rules.min_senders
            if len(top) > k:
                self._top = dict(heapq.nlargest(k, top.items(), key=lambda item: item[1]))
        if len(self._top) >= self.rules.min_senders:
            self._raise_watermark(min(self._top.values()))

    def _raise_watermark(self, candidate: int) -> None:
        if self._wall_now is not None:
            candidate = min(candidate, self._wall_now)
        if candidate > self.watermark:
            self.watermark = candidate

    def _insert(self, sid: str, state: KeyState, buffered: Buffered, touching: list[Window]) -> Optional[Window]:
        r = self.rules
        ts = buffered[0]
        target = self._place(state, touching, ts)
        if not target.events and target.part == 1 and state.next_part > 1:
            target.part, target.previous_window_id = state.next_part, state.previous_window_id
        if target.events and max(target.end, ts) - min(target.start, ts) > r.max_duration_ms:
            target = self._split(sid, state, target, ts, "max-duration")
        target.add(buffered)
        if buffered[3] == "session-end" and (not target.ended or ts < target.end):
            self._end_at(sid, state, target, ts)
        if len(target.events) >= r.max_events and target in state.windows:
            self._close_now(sid, state, target, "max-events")
        return target if target in state.windows else None

    def _end_at(self, sid: str, state: KeyState, w: Window, end: int) -> None:
        """A session-end fixes the window's end; events after it (arrived earlier, out of
        order) move to the next session, exactly as if they had arrived in order."""
        w.ended, w.end = True, end
        after = [e for e in w.events if e[0] > end]
        if not after:
            return
        w.events = [e for e in w.events if e[0] <= end]
        w.ids = {e[2] for e in w.events}
        w.start = min(e[0] for e in w.events)
        for e in sorted(after, key=lambda e: (e[0], e[1])):
            touching = [x for x in state.windows if x.touches(e[0], self.rules.gap_ms)]
            self._insert(sid, state, e, touching)

    def _place(self, state: KeyState, touching: list[Window], ts: int) -> Window:
        if not touching:
            w = Window(start=ts, end=ts)
            state.windows.append(w)
            return w
        first = min(touching, key=lambda w: w.start)
        for other in touching:
            if other is not first:
                first.absorb(other)
                state.windows.remove(other)
        return first

    def _split(self, sid: str, state: KeyState, full: Window, ts: int, reason: str) -> Window:
        self._close_now(sid, state, full, reason)
        nxt = Window(start=ts, end=ts, part=state.next_part, previous_window_id=state.previous_window_id)
        state.windows.append(nxt)
        return nxt

    def _close_now(self, sid: str, state: KeyState, w: Window, reason: str) -> None:
        state.windows.remove(w)
        state.closed_until = max(state.closed_until or w.end, w.end)
        state.next_part = w.part + 1
        state.previous_window_id = window_id(sid, w.start)
        self.buffered_events -= len(w.events)
        self._ready.append(Closed(sid, w, reason))
        self.dirty.add(sid)

    # -- closing --------------------------------------------------------------------------
    def advance(self, wall_ms: int) -> None:
        """Let wall-clock time carry the watermark forward while the partition is quiet.

        Only a quiet partition (no events since the last call) moves on wall time: a worker
        that is behind must not let wall time run past the events still waiting for it, or it
        would close their sessions before they arrive. Nor does wall time count while paused."""
        self._fold_event_time()
        self._wall_now = wall_ms
        if self._wall_at_watermark is None or self._busy or self._wall_paused:
            self._wall_at_watermark = wall_ms
            self._busy = False
            return
        if self._top:  # quiet: even a single sender's time is all there is to go by
            self._raise_watermark(min(self._top.values()))
        elapsed = wall_ms - self._wall_at_watermark
        if elapsed > 0:
            self.watermark += elapsed
            self._wall_at_watermark = wall_ms

    def pause_wall_clock(self) -> None:
        """The worker cannot read from the broker: events may be waiting there, so wall time
        must not close their sessions. The adapter calls this on a failed or stalled fetch."""
        self._wall_paused = True

    def resume_wall_clock(self, wall_ms: int) -> None:
        """Reading works again; wall time counts from now (the outage never does)."""
        self._wall_paused = False
        self._wall_at_watermark = wall_ms

    @property
    def wall_clock_paused(self) -> bool:
        return self._wall_paused

    def take_closed(self, hold: Container[str] = ()) -> list[Closed]:
        """Windows that can no longer change, in close order. Session ids in `hold` still have
        events on their way (re-keyed through Kafka) and stay open until those arrive."""
        r = self.rules
        self._fold_event_time()
        wm, wall = self.watermark, self._wall_now
        for sid in list(self.keys):
            if sid in hold:
                continue
            state = self.keys[sid]
            for w in list(state.windows):
                deadline = w.end + r.grace_ms if w.ended else w.end + r.gap_ms + r.grace_ms
                settling = w.hold_until_wall is not None and wall is not None and wall < w.hold_until_wall
                if deadline <= wm and not settling:
                    reason = "session-end" if w.ended else "inactivity"
                    self._close_now(sid, state, w, reason)
                    state.next_part, state.previous_window_id = 1, None  # a gap ends a chain
            if not state.windows and (state.closed_until is None
                                      or state.closed_until + r.gap_ms + r.grace_ms <= wm):
                del self.keys[sid]  # nothing open, and the chain of parts can no longer continue
                self.dirty.add(sid)
        out, self._ready = self._ready, []
        return out

    def close_all(self, reason: str = "end-of-input") -> list[Closed]:
        for sid, state in list(self.keys.items()):
            for w in list(state.windows):
                self._close_now(sid, state, w, reason)
            del self.keys[sid]
        out, self._ready = self._ready, []
        return out

    def drain_dirty(self) -> set[str]:
        out, self.dirty = self.dirty, set()
        return out

    # -- persistence (the state topic stores these) ----------------------------------------
    def export_key(self, sid: str) -> Optional[dict[str, Any]]:
        state = self.keys.get(sid)
        if state is None:
            return None
        return {
            "closed_until": state.closed_until,
            "next_part": state.next_part,
            "previous_window_id": state.previous_window_id,
            "windows": [
                {"start": w.start, "end": w.end, "ended": w.ended, "part": w.part,
                 "previous_window_id": w.previous_window_id,
                 "events": [[e[0], e[2], e[3], e[4]] for e in w.events]}
                for w in state.windows
            ],
        }

    def import_key(self, sid: str, data: dict[str, Any]) -> None:
        state = KeyState(closed_until=data.get("closed_until"), next_part=data.get("next_part", 1),
                         previous_window_id=data.get("previous_window_id"))
        for wd in data.get("windows", ()):
            w = Window(start=wd["start"], end=wd["end"], ended=wd.get("ended", False),
                       part=wd.get("part", 1), previous_window_id=wd.get("previous_window_id"))
            for ts, eid, etype, text in wd["events"]:
                self._seq += 1
                w.events.append((ts, self._seq, eid, etype, text))
                w.ids.add(eid)
            self.buffered_events += len(w.events)
            state.windows.append(w)
            self._observe(sid, w.end)
        if state.windows or state.closed_until is not None:
            self.keys[sid] = state

    def _observe(self, sid: str, ts: int) -> None:
        """Count `ts` as `sid`'s event time for the watermark (restored state)."""
        if ts > self._recent.get(sid, ts - 1):
            self._recent[sid] = ts

    def open_session_count(self) -> int:
        return sum(len(s.windows) for s in self.keys.values())


def build_closed_session(closed: Closed, signal_rules: SignalRules = SignalRules()) -> dict[str, Any]:
    """The closed-session dict (schemas.sessions.ClosedSession shape)."""
    w = closed.window
    ordered = sorted(w.events, key=lambda e: (e[0], e[1]))
    events = [orjson.loads(e[4]) for e in ordered]
    for ev, buf in zip(events, ordered):
        ev["timestamp"] = buf[0]
    started, ended = ordered[0][0], ordered[-1][0]
    return {
        "session_id": closed.session_id,
        "window_id": window_id(closed.session_id, w.start),
        "part": w.part,
        "previous_window_id": w.previous_window_id,
        "close_reason": closed.reason,
        "started_at": started,
        "ended_at": ended,
        "duration_ms": ended - started,
        "event_count": len(events),
        "events": events,
        "signals": detect_signals(events, signal_rules),
        "pages": page_visits(events),
        "context": session_context(events),
        "comparisons": [],
    }


def session_context(events: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The latest non-empty user, org, device and location seen in the session."""
    ctx: dict[str, Any] = {"user": None, "org": None, "device": None, "location": None}
    for ev in events:
        for name in ("user", "org", "device", "location"):
            value = ev.get(name)
            if value:
                ctx[name] = value
    return ctx

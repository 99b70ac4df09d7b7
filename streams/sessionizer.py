"""Session windows over one partition's events, in event time. Pure: no Kafka, no I/O.

Rules (README 'Sessionization'):
- Events of one session id that lie within `gap_ms` of each other form one session window; an
  event that bridges two open windows merges them (as Kafka Streams and Flink session windows do).
- A window closes by inactivity once the watermark passes `end + gap + grace`: no event that is
  still on time (ts >= watermark - grace) could then touch it, so out-of-order arrival within the
  grace period never changes what is emitted.
- A session-end event ends its window at that event; the window closes once the watermark passes
  `end + grace` (events after it start a new session).
- Limits split a window into linked parts at once: `max_events`, `max_duration_ms`, `max_bytes`
  (the encoded size of its events, so a closed session always fits its topic).
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
from operator import itemgetter
from dataclasses import dataclass, field
from typing import Any, Container, Iterable, Optional, Sequence

import orjson

from replaylens.streams.ingest import Accepted
from replaylens.streams.pages import page_visits
from replaylens.streams.signals import SignalRules, automation_evidence, detect_signals
from replaylens.schemas.sessions import window_id


@dataclass(frozen=True, slots=True)
class SessionRules:
    gap_ms: int = 30 * 60_000
    grace_ms: int = 30_000
    max_duration_ms: int = 12 * 3_600_000
    max_events: int = 10_000
    max_bytes: int = 256 * 1024
    # Distinct session ids that must reach an event time before the watermark does.
    min_senders: int = 5

    @classmethod
    def from_settings(cls, s: Any) -> "SessionRules":
        return cls(s.session_gap_ms, s.session_grace_ms, s.session_max_duration_ms, s.session_max_events,
                   s.session_max_bytes, s.watermark_min_sessions)


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
    nbytes: int = 0  # UTF-8 size of the buffered events' JSON (the max-bytes limit)
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
        self.nbytes += utf8_size(ev[4])
        ts = ev[0]
        if ts < self.start:
            self.start = ts
        if ts > self.end and not self.ended:
            self.end = ts

    def absorb(self, other: "Window") -> None:
        self.events.extend(other.events)
        self.ids |= other.ids
        self.nbytes += other.nbytes
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
class PieceLog:
    """What the state topic holds for one session id: live pieces [first, next), and which
    events they cover (arrival sequence up to `saved_seq`, `saved_count` of them)."""

    first: int = 0
    next: int = 0
    saved_seq: int = 0
    saved_count: int = 0
    legacy: bool = False  # a whole-state record keyed by the bare session id is still there
    head_shape: Any = None  # what the last head written said, but a single window's bounds
    orphans: list[tuple[int, int]] = field(default_factory=list)  # (generation, n) left by a crash


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


# Shared results of the common outcomes (never mutated): no allocation per event.
_ACCEPTED = AddResult(True)
_DUPLICATE = AddResult(False, duplicate=True)


def utf8_size(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode())


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
        self.persisted: dict[str, PieceLog] = {}  # what the state topic holds per session id
        self._saved_watermark: Optional[int] = None  # the partition event time last written

    # -- adding ---------------------------------------------------------------------------
    def add(self, ev: Accepted, wall_ms: Optional[int] = None, rekeyed: bool = False) -> AddResult:
        """Add one event. Only an already closed part of its session makes it late (never the
        watermark alone), so `rekeyed` (events that took a detour through the re-key topic) is
        kept for the callers' sake and needs no rule of its own."""
        ts, sid = ev.timestamp, ev.session_id
        state = self.keys.get(sid)
        if state is not None and len(state.windows) == 1 and ev.type != "session-end":
            # Fast path, the usual case: the next event of the one open session of this id.
            # (Window.add and _accepted inlined: this runs once per event.)
            w, r = state.windows[0], self.rules
            start, end, gap, closed_until = w.start, w.end, r.gap_ms, state.closed_until
            new_start = ts if ts < start else start
            new_end = ts if ts > end else end
            events, text = w.events, ev.json
            if (not w.ended and start - gap <= ts <= end + gap
                    and (closed_until is None or ts > closed_until)
                    and new_end - new_start <= r.max_duration_ms
                    and len(events) + 1 < r.max_events and w.nbytes + len(text) < r.max_bytes):
                event_id, ids = ev.event_id, w.ids
                if event_id in ids:
                    return _DUPLICATE
                seq = self._seq = self._seq + 1
                events.append((ts, seq, event_id, ev.type, text))
                ids.add(event_id)
                w.nbytes += len(text) if text.isascii() else len(text.encode())
                w.start, w.end = new_start, new_end
                if ts < self.watermark - r.grace_ms:
                    self._hold(w, wall_ms)
                self.buffered_events += 1
                self._busy = True
                if wall_ms is not None:
                    self._wall_now = wall_ms
                recent = self._recent
                if ts > recent.get(sid, ts - 1):
                    recent[sid] = ts
                self.dirty.add(sid)
                return _ACCEPTED
        r = self.rules
        if state is None and ev.type != "session-end":
            # The first event of a session id: one new window, which its limits cannot close yet
            # (what `_insert` would do, without its search for windows to join or split).
            text = ev.json
            if 1 < r.max_events and (len(text) if text.isascii() else len(text.encode())) < r.max_bytes:
                w = Window(start=ts, end=ts)
                self.keys[sid] = KeyState([w])
                seq = self._seq = self._seq + 1
                w.add((ts, seq, ev.event_id, ev.type, text))
                if ts < self.watermark - r.grace_ms:
                    self._hold(w, wall_ms)
                return self._accepted(sid, ts, wall_ms)
        if state is not None:
            for w in state.windows:
                if ev.event_id in w.ids:
                    return _DUPLICATE
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
        if target in state.windows and (len(target.events) >= r.max_events or target.nbytes >= r.max_bytes):
            self._close_now(sid, state, target, "max-events" if len(target.events) >= r.max_events else "max-bytes")
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
        w.nbytes = sum(utf8_size(e[4]) for e in w.events)
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
    # Open sessions are kept as appended pieces, so a batch writes only what it added (issue 12:
    # state written <= 2x the input) and no record outgrows its topic (issue 9): per session id,
    # pieces `p\0<generation>:<n>\0<sid>` each hold a JSON array of events added by one batch
    # (cut at `max_piece_bytes`), and a small head `h\0<sid>` holds the windows and the live
    # generation. A batch in which a session with one window only grew writes pieces alone (its
    # bounds are its events'). Any other change (a window closed, opened, ended, merged; several
    # windows open) starts a new generation: the live events are written again as fresh pieces,
    # then the head, then tombstones for the old generation. Records are written in that order
    # and offsets are committed after them, so a crash anywhere in between leaves the old head
    # with its whole generation, and the batch is delivered again (tests/test_sizes.py).
    def export_key(self, sid: str) -> Optional[dict[str, Any]]:
        """The whole open state of one session id (tests; the same shape import_key reads)."""
        state = self.keys.get(sid)
        if state is None:
            return None
        head = _head(state, PieceLog())
        del head["first_piece"], head["next_piece"]
        head["windows"] = [{"start": w.start, "end": w.end, "ended": w.ended, "part": w.part,
                            "previous_window_id": w.previous_window_id,
                            "events": [[e[0], e[2], e[3], e[4]] for e in w.events]}
                           for w in state.windows]
        return head

    def export_records(self, sid: str, max_piece_bytes: int) -> list[tuple[bytes, Optional[bytes]]]:
        """(key, value) records for the state topic, to be written in this order (a value of
        None is a tombstone): new pieces, then the head that lists them, then dead pieces."""
        log = self.persisted.get(sid)
        state = self.keys.get(sid)
        if state is None:
            if log is None:  # never written: opened and closed between two writes
                return []
            del self.persisted[sid]
            return [(head_key(sid), None)] + [(piece_key(sid, log.first, n), None) for n in range(log.first, log.next)] + \
                [(piece_key(sid, g, n), None) for g, n in log.orphans] + ([(sid.encode(), None)] if log.legacy else [])
        if log is None:
            log = self.persisted[sid] = PieceLog()
        live = [e for w in state.windows for e in w.events]
        new = [e for e in live if e[1] > log.saved_seq]
        shape = _shape(state)
        dead = range(0)
        dead_generation = log.first
        if len(live) - len(new) != log.saved_count or (log.head_shape is not None and shape != log.head_shape):
            dead, new = range(log.first, log.next), live  # a new generation
            log.first = log.next
            log.saved_count = 0
        records: list[tuple[bytes, Optional[bytes]]] = []
        for chunk in _chunks(sorted(new, key=lambda e: e[1]), max_piece_bytes):
            records.append((piece_key(sid, log.first, log.next), b"[" + ",".join(e[4] for e in chunk).encode() + b"]"))
            log.next += 1
        log.saved_count += len(new)
        log.saved_seq = self._seq
        if shape != log.head_shape or dead:
            records.append((head_key(sid), orjson.dumps(_head(state, log))))
            log.head_shape = shape
        records += [(piece_key(sid, dead_generation, n), None) for n in dead]
        records += [(piece_key(sid, g, n), None) for g, n in log.orphans]
        log.orphans = []
        if log.legacy:
            records.append((sid.encode(), None))
            log.legacy = False
        return records

    def export_dirty(self, max_piece_bytes: int) -> list[tuple[bytes, Optional[bytes]]]:
        """The state records of every session id changed since the last call, then the
        partition's event time (last: a worker reading the state back after a crash part-way
        through these records gets the event time of the last batch written whole, so the batch
        delivered again is judged as it was the first time)."""
        records = [r for sid in self.drain_dirty() for r in self.export_records(sid, max_piece_bytes)]
        # Only with a batch's records: an idle partition's event time moves on the wall clock every
        # tick, and writing it alone would be a record per tick for nothing a restart needs.
        if records and self.watermark != self._saved_watermark:
            records.append((WATERMARK_KEY, orjson.dumps({"watermark": self.watermark})))
            self._saved_watermark = self.watermark
        return records

    def import_key(self, sid: str, data: dict[str, Any]) -> None:
        """Resume one session id from `export_key`'s shape (what `assemble_states` returns);
        the entry WATERMARK_SID, first in `assemble_states`, restores the partition event time."""
        if sid == WATERMARK_SID:
            self.watermark = max(self.watermark, data["watermark"])
            self._saved_watermark = self.watermark
            return
        state = KeyState(closed_until=data.get("closed_until"), next_part=data.get("next_part", 1),
                         previous_window_id=data.get("previous_window_id"))
        count = 0
        for wd in data.get("windows", ()):
            w = Window(start=wd["start"], end=wd["end"], ended=wd.get("ended", False),
                       part=wd.get("part", 1), previous_window_id=wd.get("previous_window_id"))
            for ts, eid, etype, text in wd["events"]:
                self._seq += 1
                w.add((ts, self._seq, eid, etype, text))
            w.start, w.end = wd["start"], wd["end"]
            self.buffered_events += len(w.events)
            count += len(w.events)
            state.windows.append(w)
            self._observe(sid, w.end)
        if state.windows or state.closed_until is not None:
            self.keys[sid] = state
        if "first_piece" in data or data.get("legacy"):
            # A whole-state record counts as nothing saved: the next write puts it in pieces.
            saved = count if "first_piece" in data else 0
            self.persisted[sid] = PieceLog(data.get("first_piece", 0), data.get("next_piece", 0),
                                           self._seq, saved, legacy=bool(data.get("legacy")),
                                           orphans=[tuple(o) for o in data.get("orphans", ())])

    def _observe(self, sid: str, ts: int) -> None:
        """Count `ts` as `sid`'s event time for the watermark (restored state)."""
        if ts > self._recent.get(sid, ts - 1):
            self._recent[sid] = ts

    def open_session_count(self) -> int:
        return sum(len(s.windows) for s in self.keys.values())


# A closed session's pages, signals and context repeat parts of its events (urls, selectors,
# texts): a generous bound of their size relative to the events', below which the encoded size
# is not measured (measuring costs a second encoding of the session).
CLOSED_SESSION_OVERHEAD = 4


def build_closed_session(closed: Closed, signal_rules: SignalRules = SignalRules(),
                         max_record_bytes: Optional[int] = None) -> dict[str, Any]:
    """The closed-session dict (schemas.sessions.ClosedSession shape). With `max_record_bytes`,
    a session whose encoding would pass it keeps all its events but only the pages and signals
    that fit (`trimmed` counts the ones left out); the max-bytes split makes that rare."""
    session = _closed_session(closed, signal_rules)
    if max_record_bytes is not None and closed.window.nbytes * CLOSED_SESSION_OVERHEAD > max_record_bytes:
        _fit(session, max_record_bytes)
    return session


def _fit(session: dict[str, Any], max_bytes: int) -> None:
    dropped = {"pages": 0, "signals": 0}
    while len(orjson.dumps(session)) > max_bytes and (session["pages"] or session["signals"]):
        name = "signals" if len(session["signals"]) >= len(session["pages"]) else "pages"
        items = session[name]
        keep = len(items) // 2
        dropped[name] += len(items) - keep
        session[name] = items[:keep]
        session["trimmed"] = dropped


_time_and_arrival = itemgetter(0, 1)


def _closed_session(closed: Closed, signal_rules: SignalRules) -> dict[str, Any]:
    w = closed.window
    ordered = sorted(w.events, key=_time_and_arrival)
    # One decode for the whole window: the buffered texts joined into one JSON array.
    events = orjson.loads("[" + ",".join([e[4] for e in ordered]) + "]")
    if len(events) != len(ordered):  # a text that is not one JSON value (never accepted)
        raise ValueError(f"{len(ordered)} buffered events decoded as {len(events)}")
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
        "automated": automation_evidence(events),
    }


_CONTEXT_FIELDS = ("user", "org", "device", "location")


def session_context(events: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The latest non-empty user, org, device and location seen in the session (each looked for
    from the last event back: usually the last event has it)."""
    ctx: dict[str, Any] = {}
    for name in _CONTEXT_FIELDS:
        found = None
        for ev in reversed(events):
            value = ev.get(name)
            if value:
                found = value
                break
        ctx[name] = found
    return ctx


# -- the state topic's records -------------------------------------------------------------------
HEAD_PREFIX = b"h\0"
WATERMARK_KEY = b"w\0"
WATERMARK_SID = ""  # not a valid session id (the contract needs one character at least)
PIECE_PREFIX = b"p\0"


def head_key(sid: str) -> bytes:
    return HEAD_PREFIX + sid.encode()


def piece_key(sid: str, generation: int, n: int) -> bytes:
    return PIECE_PREFIX + f"{generation}:{n}".encode() + b"\0" + sid.encode()


def _head(state: KeyState, log: PieceLog) -> dict[str, Any]:
    return {"closed_until": state.closed_until, "next_part": state.next_part,
            "previous_window_id": state.previous_window_id, "first_piece": log.first,
            "next_piece": log.next,
            "windows": [{"start": w.start, "end": w.end, "ended": w.ended, "part": w.part,
                         "previous_window_id": w.previous_window_id} for w in state.windows]}


def _shape(state: KeyState) -> Any:
    """What a head says that pieces appended to the live generation cannot change: all of it with
    several windows, all but the bounds with one (its events give them)."""
    windows = state.windows
    if len(windows) != 1:
        return orjson.dumps(_head(state, PieceLog()))
    w = windows[0]
    return (state.closed_until, state.next_part, state.previous_window_id, w.ended, w.part,
            w.previous_window_id, w.end if w.ended else None)


def _chunks(events: list[Buffered], max_bytes: int) -> Iterable[list[Buffered]]:
    chunk: list[Buffered] = []
    size = 0
    for e in events:
        n = utf8_size(e[4]) + 1
        if chunk and size + n > max_bytes:
            yield chunk
            chunk, size = [], 0
        chunk.append(e)
        size += n
    if chunk:
        yield chunk


def assemble_states(records: dict[bytes, Any]) -> dict[str, dict[str, Any]]:
    """Open state per session id from the latest decoded value of each state-topic key (heads,
    pieces, and whole states under a bare session id from before pieces), in `export_key`'s
    shape for `Sessionizer.import_key`. Pieces outside a head's live range are left over from
    a crash between writes and are ignored."""
    heads: dict[str, dict[str, Any]] = {}
    pieces: dict[tuple[str, int, int], list] = {}
    out: dict[str, dict[str, Any]] = {}
    if WATERMARK_KEY in records:
        out[WATERMARK_SID] = records[WATERMARK_KEY]
    for key, value in records.items():
        if key == WATERMARK_KEY:
            continue
        if key.startswith(HEAD_PREFIX):
            heads[key[len(HEAD_PREFIX):].decode()] = value
        elif key.startswith(PIECE_PREFIX):
            numbers, _, sid = key[len(PIECE_PREFIX):].partition(b"\0")
            generation, _, n = numbers.partition(b":")
            pieces[(sid.decode(), int(generation), int(n))] = value
        elif type(value) is dict:  # the whole-state format
            out[key.decode()] = {**value, "legacy": True}
    numbers_of: dict[str, list[tuple[int, int]]] = {}
    for owner, generation, n in pieces:
        numbers_of.setdefault(owner, []).append((generation, n))
    for sid in numbers_of.keys() - heads.keys():  # pieces of a first write that a crash cut short
        beyond = max(n for _, n in numbers_of[sid]) + 1
        out[sid] = {"windows": [], "first_piece": beyond, "next_piece": beyond, "orphans": numbers_of[sid],
                    "legacy": sid in out}
    for sid, head in heads.items():
        first = head["first_piece"]
        owned = numbers_of.get(sid, [])
        numbers = sorted(n for g, n in owned if g == first)
        # A generation a crash cut short (before its head) is left over: never read, tombstoned
        # by the next write, and its numbers never used again.
        orphans = [(g, n) for g, n in owned if g != first]
        seen: set[str] = set()
        events = []
        for n in numbers:
            for ev in pieces[(sid, first, n)]:
                if ev["event_id"] not in seen:  # defensive: one generation holds an event once
                    seen.add(ev["event_id"])
                    events.append(ev)
        windows = [{**w, "events": []} for w in head["windows"]]
        for ev in events:
            ts = ev["timestamp"]
            home = windows[0] if len(windows) == 1 else \
                next((w for w in windows if w["start"] <= ts <= w["end"]), None)
            if home is None and not windows:
                continue  # nothing open: a stale piece
            if home is None:  # cannot happen with a current head; keep the event rather than lose it
                home = min(windows, key=lambda w: min(abs(ts - w["start"]), abs(ts - w["end"])))
            home["events"].append([ts, ev["event_id"], ev["type"], orjson.dumps(ev).decode()])
        for w in windows:  # a single window's bounds grow with its pieces, not its head
            if w["events"]:
                w["start"] = min(w["start"], min(e[0] for e in w["events"]))
                if not w["ended"]:
                    w["end"] = max(w["end"], max(e[0] for e in w["events"]))
        out[sid] = {**head, "windows": windows, "orphans": orphans, "legacy": sid in out,
                    "next_piece": max([first] + [n + 1 for _, n in owned])}
    return out

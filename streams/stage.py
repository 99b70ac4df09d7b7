"""The sessionizing stage: raw messages in; dead letters, re-keys and closed sessions out.

Pure orchestration of the core (decode once, sessionize per partition, build closed sessions).
Both transports drive it: the Faust agents (`streams/agents.py`) and the embedded runner
(`streams/embedded.py`): one behaviour, two transports.
"""
from __future__ import annotations

import gc
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Optional, Union

from replaylens.schemas.dead_letter import (DEFAULT_EXCERPT_BYTES, MAX_ERROR_CHARS, MAX_KEY_CHARS, bounded,
                                            original_fields)
from replaylens.streams.ingest import Accepted, EventDecoder, Rejected
from replaylens.config.privacy import Masker
from replaylens.streams.sessionizer import Closed, SessionRules, Sessionizer, build_closed_session
from replaylens.streams.signals import SignalRules


@dataclass(slots=True)
class Origin:
    topic: Optional[str] = None
    partition: Optional[int] = None
    offset: Optional[int] = None
    key: Optional[bytes] = None


@dataclass
class StageOutput:
    dead_letters: list[dict[str, Any]] = field(default_factory=list)
    rekeyed: list[tuple[str, str]] = field(default_factory=list)  # (session id, event JSON)
    closed: list[dict[str, Any]] = field(default_factory=list)

    def clear(self) -> None:
        self.dead_letters.clear()
        self.rekeyed.clear()
        self.closed.clear()


@dataclass
class Counters:
    accepted: int = 0
    rejected: int = 0
    duplicates: int = 0
    late: int = 0
    rekeyed: int = 0
    sessions_closed: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


def tune_gc() -> None:
    """Fewer garbage-collector passes. Buffered sessions are many long-lived objects; with the
    default thresholds every few hundred allocations trigger collections that walk them all,
    which costs a third of the per-event time here (bench/embedded_bench.py)."""
    gc.set_threshold(50_000, 20, 100)


def now_ms() -> int:
    return int(time.time() * 1000)


class SessionStage:
    def __init__(self, rules: SessionRules, signal_rules: SignalRules, decoder: EventDecoder) -> None:
        self.rules = rules
        self.signal_rules = signal_rules
        self.decoder = decoder
        self.partitions: dict[int, Sessionizer] = {}
        self.counters = Counters()
        self.dead_letters_by_reason: Counter[str] = Counter()  # for /metrics
        self.out = StageOutput()
        self.excerpt_bytes = DEFAULT_EXCERPT_BYTES  # of the original, in a dead letter
        self.max_record_bytes: Optional[int] = None  # a closed session is trimmed to fit this

    @classmethod
    def from_settings(cls, s: Any) -> "SessionStage":
        decoder = EventDecoder(Masker.from_settings(s), s.future_tolerance_ms, s.max_event_bytes)
        stage = cls(SessionRules.from_settings(s), SignalRules.from_settings(s), decoder)
        stage.excerpt_bytes, stage.max_record_bytes = s.dead_letter_excerpt_bytes, s.max_record_bytes
        return stage

    def sessionizer(self, partition: int) -> Sessionizer:
        sz = self.partitions.get(partition)
        if sz is None:
            sz = self.partitions[partition] = Sessionizer(self.rules)
            if self.wall_clock_paused:
                sz.pause_wall_clock()
        return sz

    # The transport calls these when it cannot read from the broker and when it can again:
    # wall time must not close sessions whose events may be waiting there (ops, issue 9).
    wall_clock_paused: bool = False

    def pause_wall_clock(self) -> None:
        self.wall_clock_paused = True
        for sz in self.partitions.values():
            sz.pause_wall_clock()

    def resume_wall_clock(self, wall_ms: int) -> None:
        self.wall_clock_paused = False
        for sz in self.partitions.values():
            sz.resume_wall_clock(wall_ms)

    def reject(self, raw: Union[bytes, str], reason: str, error: str, origin: Origin,
               session_id: Optional[str], wall_ms: int) -> None:
        self.counters.rejected += 1
        self.dead_letters_by_reason[reason] += 1
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogatepass")
        key = origin.key[:MAX_KEY_CHARS * 4].decode("utf-8", "replace") if origin.key else None
        masker = self.decoder.masker
        self.out.dead_letters.append({
            "reason": reason, "error": bounded(error, MAX_ERROR_CHARS), "topic": origin.topic,
            "partition": origin.partition, "offset": origin.offset, "key": bounded(key, MAX_KEY_CHARS),
            "session_id": bounded(session_id, MAX_KEY_CHARS), "received_at": wall_ms,
            **original_fields(raw, masker, self.excerpt_bytes),
        })

    def decode(self, raw: Union[bytes, str], origin: Origin, wall_ms: int) -> Optional[Accepted]:
        result = self.decoder.decode(raw, wall_ms)
        if isinstance(result, Rejected):
            self.reject(raw, result.reason, result.error, origin, result.session_id, wall_ms)
            return None
        return result

    def add(self, partition: int, ev: Accepted, raw: Union[bytes, str], origin: Origin, wall_ms: int,
            rekeyed: bool = False) -> None:
        result = self.sessionizer(partition).add(ev, wall_ms, rekeyed)
        if result.accepted:
            self.counters.accepted += 1
        elif result.duplicate:
            self.counters.duplicates += 1
        else:
            self.counters.late += 1
            self.reject(raw, "late", result.late_reason or "late", origin, ev.session_id, wall_ms)

    def process(self, partition: int, raw: Union[bytes, str], origin: Origin, wall_ms: int) -> None:
        """Decode and sessionize one message (the embedded runner's path: no re-keying)."""
        ev = self.decode(raw, origin, wall_ms)
        if ev is not None:
            self.add(partition, ev, raw, origin, wall_ms)

    def close_ready(self, partitions, wall_ms: Optional[int] = None, hold=()) -> list[dict[str, Any]]:
        """Close what can no longer change on these partitions; returns closed-session dicts."""
        closed: list[Closed] = []
        for p in partitions:
            sz = self.partitions.get(p)
            if sz is None:
                continue
            if wall_ms is not None:
                sz.advance(wall_ms)
            closed += sz.take_closed(hold)
        return self._built(closed)

    def close_all(self, reason: str = "end-of-input") -> list[dict[str, Any]]:
        closed: list[Closed] = []
        for sz in self.partitions.values():
            closed += sz.close_all(reason)
        return self._built(closed)

    def _built(self, closed: list[Closed]) -> list[dict[str, Any]]:
        self.counters.sessions_closed += len(closed)
        return [build_closed_session(c, self.signal_rules, self.max_record_bytes) for c in closed]

    def buffered_events(self) -> int:
        return sum(sz.buffered_events for sz in self.partitions.values())

    def open_sessions(self) -> int:
        return sum(sz.open_session_count() for sz in self.partitions.values())

"""The sessionizing stage: raw messages in; one `Flush` value out per flush.

Pure orchestration of the core (decode once, sessionize per partition, build closed sessions).
Both runners drive it through `streams/wiring.py`: the Kafka worker (`streams/worker.py`) and the
embedded runner (`streams/embedded.py`): one behaviour, two transports.

Per-message isolation: `process` never lets an exception raised by one message's decoding,
validation or sessionizing escape; the message becomes an `internal-error` dead letter (reason
and origin, never its contents in a log) and `counters.internal_errors` counts it.
"""
from __future__ import annotations

import gc
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Container, Iterable, Optional, Union

from replaylens.config.privacy import DEFAULT_POLICY, Masker, PrivacyPolicy
from replaylens.schemas.dead_letter import (DEFAULT_EXCERPT_BYTES, MAX_ERROR_CHARS, MAX_KEY_CHARS, bounded,
                                            original_fields)
from replaylens.streams.ingest import Accepted, EventDecoder, Rejected
from replaylens.streams.sessionizer import AddResult, Closed, SessionRules, Sessionizer, build_closed_session
from replaylens.streams.signals import SignalRules

log = logging.getLogger("replaylens.streams")

# Collect the youngest generation after this many net allocations instead of CPython's 700:
# buffered sessions are many long-lived objects, and frequent collections walk them again and
# again (a third of the per-event time in bench/embedded_bench.py). The older generations keep
# CPython's ratios (10, 10) scaled so a full collection stays rare but still happens.
GC_YOUNG_THRESHOLD = 50_000
GC_MIDDLE_RATIO = 20
GC_OLD_RATIO = 100
# A closed session that cannot be built is dead-lettered with at most this much of its events.
CLOSED_EXCERPT_CHARS = 4_096
# Largest state record piece when the stage is built without settings (Settings.state_piece_max_bytes).
STATE_PIECE_BYTES = 256 * 1024


class _EverySession:
    """A hold that holds every session id (a partition with re-keyed events not yet read)."""

    def __contains__(self, _session_id: object) -> bool:
        return True


EVERY_SESSION = _EverySession()


@dataclass(slots=True)
class Origin:
    topic: Optional[str] = None
    partition: Optional[int] = None
    offset: Optional[int] = None
    key: Optional[bytes] = None


@dataclass
class Flush:
    """Everything one flush produced, for the runner to write its own way. Order of writing:
    dead letters, re-keys and closed sessions before the state changes that forget them."""

    dead_letters: list[dict[str, Any]] = field(default_factory=list)
    rekeyed: list[tuple[str, str]] = field(default_factory=list)  # (session id, event JSON)
    closed: list[dict[str, Any]] = field(default_factory=list)  # with comparisons (see wiring)
    # (partition, state-topic key, record or None): appended pieces and heads of the changed
    # session ids, then the partition's event time (streams/sessionizer.py `export_dirty`)
    state: list[tuple[int, bytes, Optional[bytes]]] = field(default_factory=list)
    deltas: list[Any] = field(default_factory=list)  # the closed sessions' aggregates.deltas.UrlDelta

    def __bool__(self) -> bool:
        return bool(self.dead_letters or self.rekeyed or self.closed or self.state)


@dataclass
class Counters:
    accepted: int = 0
    rejected: int = 0
    duplicates: int = 0
    late: int = 0
    rekeyed: int = 0
    sessions_closed: int = 0
    internal_errors: int = 0  # messages whose processing raised (dead-lettered, batch went on)
    outputs_too_large: int = 0  # outputs the broker refused for their size (dead-lettered)

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


def tune_gc() -> None:
    """Fewer garbage-collector passes, for the programs that hold many sessions open (`replaylens
    run`, `replaylens worker`, the benchmarks). Called once by them, never by a library class."""
    gc.set_threshold(GC_YOUNG_THRESHOLD, GC_MIDDLE_RATIO, GC_OLD_RATIO)


def now_ms() -> int:
    return int(time.time() * 1000)


class SessionStage:
    def __init__(self, rules: SessionRules, signal_rules: SignalRules, decoder: EventDecoder,
                 counters: Optional[Counters] = None) -> None:
        self.rules = rules
        self.signal_rules = signal_rules
        self.decoder = decoder
        self.partitions: dict[int, Sessionizer] = {}
        self.counters = counters or Counters()
        self._dead: list[dict[str, Any]] = []
        self._rekeyed: list[tuple[str, str]] = []
        self.dead_letters_by_reason: Counter[str] = Counter()  # for /metrics
        self.excerpt_bytes = DEFAULT_EXCERPT_BYTES  # of the original, in a dead letter
        self.max_record_bytes: Optional[int] = None  # a closed session is trimmed to fit this
        self.state_piece_bytes = STATE_PIECE_BYTES
        self.wall_clock_paused = False

    @classmethod
    def from_settings(cls, s: Any, counters: Optional[Counters] = None) -> "SessionStage":
        decoder = EventDecoder(Masker.from_settings(s), s.future_tolerance_ms, s.max_event_bytes)
        stage = cls(SessionRules.from_settings(s), SignalRules.from_settings(s), decoder, counters)
        stage.excerpt_bytes, stage.max_record_bytes = s.dead_letter_excerpt_bytes, s.max_record_bytes
        stage.state_piece_bytes = s.state_piece_max_bytes
        return stage

    def sessionizer(self, partition: int) -> Sessionizer:
        sz = self.partitions.get(partition)
        if sz is None:
            sz = self.partitions[partition] = Sessionizer(self.rules)
            if self.wall_clock_paused:
                sz.pause_wall_clock()
        return sz

    # A runner that cannot read from its source calls these: wall time must not close sessions
    # whose events may be waiting there (the Kafka worker uses its ReadClock instead).
    def pause_wall_clock(self) -> None:
        self.wall_clock_paused = True
        for sz in self.partitions.values():
            sz.pause_wall_clock()

    def resume_wall_clock(self, wall_ms: int) -> None:
        self.wall_clock_paused = False
        for sz in self.partitions.values():
            sz.resume_wall_clock(wall_ms)

    def _dead_letter(self, raw: Union[bytes, str], reason: str, error: str, origin: Origin,
                     session_id: Optional[str], wall_ms: int) -> None:
        self.dead_letters_by_reason[reason] += 1
        self._dead.append(dead_letter(raw, reason, error, origin, session_id, wall_ms,
                                      self.decoder.masker, self.excerpt_bytes))

    # -- messages in ----------------------------------------------------------------------
    def reject(self, raw: Union[bytes, str], reason: str, error: str, origin: Origin,
               session_id: Optional[str], wall_ms: int) -> None:
        self.counters.rejected += 1
        self._dead_letter(raw, reason, error, origin, session_id, wall_ms)

    def process(self, partition: int, raw: Union[bytes, str], origin: Origin, wall_ms: int,
                clock_ms: Optional[int] = None, rekeyed: bool = False,
                keyed_right: Any = None) -> Optional[Accepted]:
        """Decode and sessionize one message; never raises. `clock_ms` is the time the
        sessionizer may rely on (see worker.ReadClock), `wall_ms` the time for the future check.
        With `keyed_right(session_id)` given and false, the event is re-keyed, not added.
        Returns the decoded event (None when it was rejected)."""
        try:
            result = self.decoder.decode(raw, wall_ms)
            if type(result) is Rejected:
                self.reject(raw, result.reason, result.error, origin, result.session_id, wall_ms)
                return None
            if keyed_right is not None and not keyed_right(result.session_id):
                self._rekeyed.append((result.session_id, result.json))
                self.counters.rekeyed += 1
                return result
            # `add` inlined for its common outcome: this runs once per event
            sz = self.partitions.get(partition) or self.sessionizer(partition)
            clock = wall_ms if clock_ms is None else clock_ms
            added = sz.add(result, clock, rekeyed)
            if added.accepted:
                self.counters.accepted += 1
            else:
                self._not_added(added, raw, origin, result.session_id, clock)
            return result
        except Exception as exc:  # noqa: BLE001 - per-message isolation: counted and dead-lettered
            self.internal_error(raw, exc, origin, wall_ms)
        return None

    def internal_error(self, raw: Union[bytes, str], exc: BaseException, origin: Origin, wall_ms: int) -> None:
        """One message's processing raised: dead-letter it, count it, log only where it came from."""
        self.counters.internal_errors += 1
        log.warning("internal error on %s[%s]@%s: %s (dead-lettered)", origin.topic, origin.partition,
                    origin.offset, type(exc).__name__)
        self._dead_letter(raw, "internal-error", f"{type(exc).__name__} while processing the message",
                          origin, None, wall_ms)

    def add(self, partition: int, ev: Accepted, raw: Union[bytes, str], origin: Origin, wall_ms: int,
            rekeyed: bool = False) -> None:
        sz = self.partitions.get(partition) or self.sessionizer(partition)
        result = sz.add(ev, wall_ms, rekeyed)
        if result.accepted:
            self.counters.accepted += 1
        else:
            self._not_added(result, raw, origin, ev.session_id, wall_ms)

    def _not_added(self, result: AddResult, raw: Union[bytes, str], origin: Origin, session_id: str,
                   wall_ms: int) -> None:
        if result.duplicate:
            self.counters.duplicates += 1
        else:
            self.counters.late += 1
            self.reject(raw, "late", result.late_reason or "late", origin, session_id, wall_ms)

    # -- one flush out --------------------------------------------------------------------
    def flush(self, partitions: Iterable[int], clock_ms: Optional[int] = None,
              hold: Container[str] = (), close_all: bool = False, with_state: bool = True,
              held: Container[int] = ()) -> Flush:
        """Close what can no longer change on these partitions (everything with `close_all`)
        and hand out all that happened since the last flush, as one value. Session ids in `hold`
        and every session of a partition in `held` stay open (events of theirs may still be in the
        re-key topic); sessions split by a limit are handed out all the same. `with_state=False`
        for a runner that keeps no durable state (embedded): changed sessions are not exported."""
        closed: list[Closed] = []
        state: list[tuple[int, bytes, Optional[bytes]]] = []
        for p in list(partitions):
            sz = self.partitions.get(p)
            if sz is None:
                continue
            if close_all:
                closed += sz.close_all()
            else:
                if clock_ms is not None:
                    sz.advance(clock_ms)
                closed += sz.take_closed(EVERY_SESSION if p in held else hold)
            if with_state:
                state += [(p, key, value) for key, value in sz.export_dirty(self.state_piece_bytes)]
            else:
                sz.drain_dirty()
        built = self._built(closed)  # (may add dead letters)
        out = Flush(self._dead, self._rekeyed, built, state)
        self._dead, self._rekeyed = [], []
        return out

    def _built(self, closed: list[Closed]) -> list[dict[str, Any]]:
        """Closed-session dicts. One that cannot be built (a bug, or data no check foresaw)
        becomes an internal-error dead letter carrying a bounded excerpt of its events, so it
        cannot fail every flush (and every restart) after it."""
        self.counters.sessions_closed += len(closed)
        out = []
        for c in closed:
            try:
                out.append(build_closed_session(c, self.signal_rules, self.max_record_bytes))
            except Exception as exc:  # noqa: BLE001 - per-session isolation: counted and dead-lettered
                self.counters.internal_errors += 1
                log.warning("internal error building closed session %s: %s (dead-lettered)",
                            c.window.start, type(exc).__name__)
                texts = ",".join(e[4] for e in c.window.events)
                self._dead_letter(
                    ("[" + texts[:CLOSED_EXCERPT_CHARS] + "]").encode(), "internal-error",
                    f"{type(exc).__name__} while building the closed session ({len(c.window.events)} events)",
                    Origin(), c.session_id, now_ms())
        return out

    def buffered_events(self) -> int:
        return sum(sz.buffered_events for sz in self.partitions.values())

    def open_sessions(self) -> int:
        return sum(sz.open_session_count() for sz in self.partitions.values())


def dead_letter(raw: Union[bytes, str], reason: str, error: str, origin: Origin,
                session_id: Optional[str], wall_ms: int, policy: PrivacyPolicy = DEFAULT_POLICY,
                excerpt_bytes: int = DEFAULT_EXCERPT_BYTES) -> dict[str, Any]:
    """A dead letter of bounded size: error, key and session id cut, the original as a masked
    excerpt with the whole message's size and digest (schemas/dead_letter.py)."""
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogatepass")
    key = origin.key[:MAX_KEY_CHARS * 4].decode("utf-8", "replace") if origin.key else None
    return {
        "reason": reason, "error": bounded(error, MAX_ERROR_CHARS), "topic": origin.topic,
        "partition": origin.partition, "offset": origin.offset, "key": bounded(key, MAX_KEY_CHARS),
        "session_id": bounded(session_id, MAX_KEY_CHARS), "received_at": wall_ms,
        **original_fields(raw, policy, excerpt_bytes),
    }

"""Size-proof outputs in the pure core (README 'Limits'): sessions split by bytes into linked
parts, open-session state written as appended pieces and read back whole, dead letters bounded."""
from __future__ import annotations

import hashlib
import random

import orjson
import pytest

from replaylens.config.settings import Settings
from replaylens.schemas.dead_letter import DeadLetter
from replaylens.schemas.sessions import ClosedSession
from replaylens.streams.sessionizer import SessionRules, Sessionizer, assemble_states, build_closed_session
from replaylens.streams.stage import Origin, SessionStage

NOW = 1_763_900_000_000
S = Settings()


def _event(sid: str, i: int, ts: int, body: int = 300, **extra) -> bytes:
    ev = {"session_id": sid, "event_id": f"{sid}-{i}", "timestamp": ts, "type": "click",
          "url": f"https://shop.example.com/p/{i % 7}", "target": {"selector": "button#buy", "text": "Buy"}}
    ev.update(extra)
    raw = orjson.dumps(ev)
    pad = max(0, body - len(raw) - 16)
    return orjson.dumps({**ev, "properties": {"pad": "x" * pad}}) if pad else raw


class TopicLog:
    """A compacted topic in memory: the latest value per key, and the bytes ever written."""

    def __init__(self) -> None:
        self.latest: dict[bytes, bytes] = {}
        self.written = 0
        self.largest = 0

    def write(self, records) -> None:
        for key, value in records:
            self.written += len(key) + (len(value) if value else 0)
            self.largest = max(self.largest, len(value or b""))
            if value is None:
                self.latest.pop(key, None)
            else:
                self.latest[key] = value

    def states(self):
        return assemble_states({k: orjson.loads(v) for k, v in self.latest.items()})


def _persist(sz: Sessionizer, log: TopicLog, piece_bytes: int = S.state_piece_max_bytes) -> None:
    log.write(sz.export_dirty(piece_bytes))


def _restore(log: TopicLog, rules: SessionRules) -> Sessionizer:
    sz = Sessionizer(rules)
    for sid, state in log.states().items():
        sz.import_key(sid, state)
    sz.dirty.clear()
    return sz


def test_a_200k_event_session_of_300_byte_bodies_goes_through_in_linked_parts_under_defaults():
    stage = SessionStage.from_settings(S)
    n = 200_000
    closed = []
    template = _event("big", 0, 0).replace(b'"big-0"', b'"big-%d"').replace(b'"timestamp":0', b'"timestamp":%d')
    assert len(template) - 4 + 6 >= 300
    origin = Origin("events", 0, 0)
    for i in range(n):
        stage.process(0, template % (i, NOW - 12 * 3_600_000 + i * 200), origin, NOW)  # 11 h of clicks
        if i % 20_000 == 0:
            closed += stage.flush([0], NOW).closed
    closed += stage.flush([0], close_all=True).closed
    sizes = [len(orjson.dumps(c)) for c in closed]
    assert sum(c["event_count"] for c in closed) == n and stage.counters.accepted == n
    assert max(sizes) <= S.max_record_bytes
    assert {c["close_reason"] for c in closed[:-1]} == {"max-bytes"}
    for prev, part in zip(closed, closed[1:]):  # one chain of parts, in order
        assert part["part"] == prev["part"] + 1 and part["previous_window_id"] == prev["window_id"]
    ids = [e["event_id"] for c in closed for e in c["events"]]
    assert len(set(ids)) == n
    print(f"parts={len(closed)} largest_part_bytes={max(sizes)} limit={S.max_record_bytes}")


def test_a_one_megabyte_event_goes_through_capped_and_its_session_fits():
    stage = SessionStage.from_settings(S)
    big = orjson.dumps({"session_id": "s", "event_id": "huge", "timestamp": NOW - 1000, "type": "custom",
                        "name": "Blob", "properties": {"title": "z" * 1_000_000}})
    stage.process(0, _event("s", 1, NOW - 2000), Origin(), NOW)
    stage.process(0, big, Origin(), NOW)
    [session] = stage.flush([0], close_all=True).closed
    assert session["event_count"] == 2 and len(orjson.dumps(session)) <= S.max_record_bytes
    huge = next(e for e in session["events"] if e["event_id"] == "huge")
    assert huge["_truncated"]["original_bytes"] == len(big)


def test_a_closed_session_is_trimmed_to_its_record_limit_keeping_every_event():
    rules = SessionRules(max_bytes=10**9, max_events=10**9)
    sz = Sessionizer(rules)
    from replaylens.streams.ingest import EventDecoder
    dec = EventDecoder()
    for i in range(1000):  # every event a page: pages repeat the events' urls
        raw = orjson.dumps({"session_id": "s", "event_id": f"e{i}", "timestamp": NOW - 10**6 + i,
                            "type": "navigate", "url": f"https://x.example/{'p' * 200}/{i}"})
        sz.add(dec.decode(raw, NOW))
    [closed] = sz.close_all()
    session = build_closed_session(closed, max_record_bytes=400_000)
    assert len(orjson.dumps(session)) <= 400_000 and session["event_count"] == 1000
    assert session["trimmed"]["pages"] > 0
    ClosedSession.model_validate(session)


def _random_events(rng: random.Random, n: int = 1500):
    from replaylens.streams.ingest import EventDecoder
    dec = EventDecoder()
    events = []
    clock = {f"s{k}": NOW - 10**7 + rng.randrange(10**5) for k in range(12)}
    for i in range(n):
        sid = rng.choice(list(clock))
        clock[sid] += rng.choice([500, 2_000, 5_000, 90_000]) if rng.random() > 0.05 else 0
        kind = "session-end" if rng.random() < 0.02 else "click"
        events.append(dec.decode(_event(sid, i, clock[sid] + rng.randrange(-1500, 1500),
                                        body=rng.choice([150, 400, 1200]), type=kind), NOW))
    events.sort(key=lambda e: e.timestamp + rng.randrange(0, 1500))  # out of order within grace
    return events


CRASH_RULES = SessionRules(gap_ms=60_000, grace_ms=2_000, max_events=40, max_bytes=6_000)


def _open_windows(sz: Sessionizer):
    return {sid: sorted((w.start, w.end, w.part, w.ended, tuple(sorted(e[2] for e in w.events)))
                        for w in st.windows) for sid, st in sz.keys.items() if st.windows}


@pytest.mark.parametrize("seed", range(6))
def test_state_pieces_read_back_give_the_same_sessions_as_no_restart(seed):
    rng = random.Random(seed)
    events = _random_events(rng)

    def run(restart: bool):
        sz, log, out = Sessionizer(CRASH_RULES), TopicLog(), []
        for start in range(0, len(events), 37):  # batches
            for ev in events[start:start + 37]:
                sz.add(ev)
            out += sz.take_closed()
            _persist(sz, log, 2_000)
            if restart and rng.random() < 0.3:
                sz = _restore(log, CRASH_RULES)
        out += sz.close_all()
        return sorted((c.session_id, c.window.start, c.window.part, c.reason,
                       tuple(sorted(e[2] for e in c.window.events))) for c in out), log

    plain, _ = run(False)
    restarted, log = run(True)
    assert restarted == plain
    assert log.largest <= S.max_record_bytes


@pytest.mark.parametrize("seed", range(6))
def test_a_crash_part_way_through_a_state_write_reads_back_a_consistent_state(seed):
    """The worker dies after writing any prefix of a batch's state records; its offsets were not
    committed, so a new worker reads the state back and gets the batch again. What it reads is
    always exactly what was last written whole per session id (pieces of a cut-short generation
    are never read, and their numbers never reused), with the partition's event time of the last
    batch written whole, so the batch is judged again as it was: no event is lost, and none is
    late that would not be late without the crash."""
    rng = random.Random(seed)
    events = _random_events(rng)
    sz, log, out, late = Sessionizer(CRASH_RULES), TopicLog(), [], set()
    crashes = 0
    for start in range(0, len(events), 37):
        batch = events[start:start + 37]
        for ev in batch:
            if sz.add(ev).late_reason:
                late.add(ev.event_id)
        out += sz.take_closed()  # published before the state is written
        if rng.random() < 0.3:
            crashes += 1
            records = sz.export_dirty(2_000)
            log.write(records[:rng.randrange(len(records) + 1)])
            sz = _restore(log, CRASH_RULES)
            for ev in batch:
                if sz.add(ev).late_reason:
                    late.add(ev.event_id)
            out += sz.take_closed()
        _persist(sz, log, 2_000)
        assert _open_windows(_restore(log, CRASH_RULES)) == _open_windows(sz)
    out += sz.close_all()
    closed_ids = {e[2] for c in out for e in c.window.events}
    assert closed_ids | late == {e.event_id for e in events}
    plain = Sessionizer(CRASH_RULES)
    plain_late = {ev.event_id for ev in events if plain.add(ev).late_reason}
    assert late - closed_ids <= plain_late
    print(f"crashes={crashes} late={len(late - closed_ids)} late_without_crashes={len(plain_late)}")


def test_state_written_stays_under_twice_the_input_for_a_trickle_of_300_sessions():
    sz, log = Sessionizer(SessionRules.from_settings(S)), TopicLog()
    from replaylens.streams.ingest import EventDecoder
    dec = EventDecoder()
    input_bytes = 0
    for second in range(200):  # 300 concurrent sessions, each sending every few seconds
        for k in range(300):
            if (k + second) % 4 == 0:
                sid = f"user-{k}:session"
                raw = _event(sid, second, NOW - 10**6 + second * 1000)
                input_bytes += len(raw) + len(sid)
                sz.add(dec.decode(raw, NOW))
        sz.take_closed()
        _persist(sz, log)  # one batch per second
    ratio = log.written / input_bytes
    print(f"state_amplification={ratio:.2f} written={log.written} input={input_bytes}")
    assert ratio <= 2.0
    restored = _restore(log, SessionRules.from_settings(S))
    assert restored.buffered_events == sz.buffered_events


def test_a_whole_state_record_from_before_pieces_is_read_and_replaced():
    sz = Sessionizer()
    from replaylens.streams.ingest import EventDecoder
    sz.add(EventDecoder().decode(_event("old", 1, NOW - 5000), NOW))
    log = TopicLog()
    log.write([(b"old", orjson.dumps(sz.export_key("old")))])
    restored = _restore(log, SessionRules())
    assert restored.buffered_events == 1
    restored.dirty.add("old")
    _persist(restored, log)
    assert b"old" not in log.latest and _restore(log, SessionRules()).buffered_events == 1


def test_a_dead_letter_of_a_huge_message_is_bounded_masked_and_identifies_the_original():
    stage = SessionStage.from_settings(S)
    raw = b'{"session_id":"s","type":"input-change","value":"4111 1111 1111 1111","note":"' + \
          b"jane@example.com " * 200_000 + b'"'  # not JSON: unterminated, 3.4 MB
    stage.process(0, raw, Origin("events", 3, 42, b"k" * 2_000_000), NOW)
    [letter] = stage.flush([3]).dead_letters
    encoded = orjson.dumps(letter)
    assert len(encoded) < 64 * 1024
    DeadLetter.model_validate(letter)
    assert letter["original_bytes"] == len(raw) and letter["original_truncated"]
    assert letter["original_sha256"] == hashlib.sha256(raw).hexdigest()
    assert "4111" not in letter["original"] and "jane@example.com" not in letter["original"]
    assert letter["original_base64"] is None


def test_topics_allow_the_largest_record():
    from replaylens.streams.topics import topic_configs
    for name in (S.topic_events, S.topic_closed_sessions, S.state_topic, S.topic_dead_letter):
        assert int(topic_configs(S, name)["max.message.bytes"]) > S.max_record_bytes
    assert int(topic_configs(S, S.topic_rrweb)["max.message.bytes"]) >= 16 * 1024 * 1024


def test_a_buffered_300_byte_event_costs_under_1_kb_of_memory():
    import gc
    import tracemalloc
    from replaylens.streams.ingest import EventDecoder
    dec = EventDecoder()
    raws = [_event(f"s{i % 300}", i, NOW - 10**6 + i) for i in range(20_000)]
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        sz = Sessionizer(SessionRules.from_settings(S))
        for raw in raws:
            sz.add(dec.decode(raw, NOW))
        gc.collect()
        per_event = (tracemalloc.get_traced_memory()[0] - base) / sz.buffered_events
    finally:
        tracemalloc.stop()
    print(f"bytes_per_event={per_event:.0f} (event JSON {sum(map(len, raws)) / len(raws):.0f} bytes)")
    assert sz.buffered_events == len(raws) and per_event < 1024

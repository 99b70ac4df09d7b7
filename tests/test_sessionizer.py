"""The pure sessionizer: windows, merging, limits, lateness, duplicates, persistence."""
import random

import orjson
from hypothesis import given, settings, strategies as st

from replaylens.streams.ingest import EventDecoder
from replaylens.streams.sessionizer import SessionRules, Sessionizer, build_closed_session

MIN = 60_000
NOW = 2_000_000_000_000
decoder = EventDecoder()


def ev(sid, ts, etype="click", eid=None, **extra):
    body = {"session_id": sid, "timestamp": ts, "type": etype, "event_id": eid or f"{sid}-{ts}-{etype}"}
    if etype == "navigate":
        body.setdefault("url", "https://shop.example.com/")
    body.update(extra)
    accepted = decoder.decode(orjson.dumps(body), NOW)
    assert not hasattr(accepted, "reason"), accepted
    return accepted


# min_senders=1: these tests are about windows, so any one session's time moves event time
# (tests/test_event_time.py covers the rules that keep a few senders from dragging it).
def run(events, rules=SessionRules(gap_ms=30 * MIN, grace_ms=30_000, min_senders=1)):
    s = Sessionizer(rules)
    late, closed = [], []
    for e in events:
        r = s.add(e)
        if r.late_reason:
            late.append(e)
        closed += s.take_closed()
    closed += s.close_all()
    return [build_closed_session(c) for c in closed], late


def shape(sessions):
    return sorted((c["window_id"], tuple(e["event_id"] for e in c["events"])) for c in sessions)


def test_gap_splits_sessions_and_orders_events():
    t0 = 1_700_000_000_000
    out, late = run([ev("a", t0, "navigate"), ev("a", t0 + 5 * MIN), ev("a", t0 + 2 * MIN),
                     ev("a", t0 + 40 * MIN, "navigate"), ev("a", t0 + 90 * MIN)])
    assert not late
    assert [c["event_count"] for c in out] == [3, 1, 1]
    first = out[0]
    assert [e["timestamp"] for e in first["events"]] == [t0, t0 + 2 * MIN, t0 + 5 * MIN]
    assert first["close_reason"] == "inactivity" and first["window_id"] == f"a@{t0}"
    assert first["duration_ms"] == 5 * MIN


def test_bridging_event_merges_two_open_sessions():
    t0 = 1_700_000_000_000
    # The bridge arrives 25 min behind the watermark: within a 30-min grace, so it is on time.
    out, _ = run([ev("a", t0), ev("a", t0 + 50 * MIN), ev("a", t0 + 25 * MIN)],
                 SessionRules(gap_ms=30 * MIN, grace_ms=30 * MIN, min_senders=1))
    assert len(out) == 1 and out[0]["event_count"] == 3


def test_duplicates_dropped_and_late_event_returned_not_lost():
    t0 = 1_700_000_000_000
    s = Sessionizer(SessionRules(gap_ms=30 * MIN, grace_ms=30_000))
    assert s.add(ev("a", t0)).accepted
    assert s.add(ev("a", t0 + 2000, "session-end")).accepted
    assert s.add(ev("a", t0)).duplicate
    for other in "bcdef":  # enough distinct senders to move event time
        s.add(ev(other, t0 + 5 * MIN))
    closed = s.take_closed()
    assert [c.session_id for c in closed] == ["a"]
    late = s.add(ev("a", t0 + 1000, eid="late-one"))  # inside the published session's span
    assert not late.accepted and "already closed" in late.late_reason


def test_session_end_closes_after_grace_and_later_events_start_a_new_session():
    t0 = 1_700_000_000_000
    s = Sessionizer(SessionRules(gap_ms=30 * MIN, grace_ms=10_000))
    s.add(ev("a", t0, "navigate"))
    s.add(ev("a", t0 + 1000, "session-end"))
    s.add(ev("a", t0 + 500))  # out of order, before the end: joins
    s.add(ev("a", t0 + 5000))  # after the end: a new session
    assert s.take_closed() == []
    s.advance(t0)
    s.advance(t0 + 20_000)  # quiet: wall time moves event time on
    closed = s.take_closed()
    assert len(closed) == 1 and closed[0].reason == "session-end"
    assert build_closed_session(closed[0])["event_count"] == 3
    assert not s.add(ev("a", t0 + 700, eid="x")).accepted  # before a closed end: late


def test_max_events_splits_into_linked_parts():
    t0 = 1_700_000_000_000
    out, _ = run([ev("a", t0 + i * 1000) for i in range(7)],
                 SessionRules(gap_ms=30 * MIN, grace_ms=0, max_events=3, min_senders=1))
    assert [c["part"] for c in out] == [1, 2, 3]
    assert out[0]["close_reason"] == "max-events"
    assert out[1]["previous_window_id"] == out[0]["window_id"]
    assert sum(c["event_count"] for c in out) == 7


def test_max_duration_splits():
    t0 = 1_700_000_000_000
    out, _ = run([ev("a", t0 + i * 20 * MIN) for i in range(5)],
                 SessionRules(gap_ms=30 * MIN, grace_ms=0, max_duration_ms=45 * MIN, min_senders=1))
    assert [c["event_count"] for c in out] == [3, 2]
    assert out[0]["close_reason"] == "max-duration" and out[1]["part"] == 2


def test_idle_sessions_close_on_wall_clock_without_new_events():
    t0 = 1_700_000_000_000
    wall = t0 + 5_000  # the worker's clock, a little after the event
    s = Sessionizer(SessionRules(gap_ms=60_000, grace_ms=1000))
    s.add(ev("a", t0), wall_ms=wall)
    s.advance(wall)  # the flush after the batch: the partition was busy, wall time does not count
    s.advance(wall + 25_000)
    assert s.take_closed() == []
    s.advance(wall + 61_001)
    assert [c.reason for c in s.take_closed()] == ["inactivity"]


def test_a_busy_partition_does_not_let_wall_time_run_ahead_of_its_events():
    """A worker that is behind keeps getting old events: they must not become late."""
    t0 = 1_700_000_000_000
    s = Sessionizer(SessionRules(gap_ms=60_000, grace_ms=1_000))
    for i in range(50):  # one event per flush, each 1 s of event time, flushes 10 s of wall apart
        assert s.add(ev(f"u{i}", t0 + i * 1000), wall_ms=t0 + i * 10_000).accepted
        s.advance(t0 + i * 10_000 + 10_000)
        s.take_closed()
    # The watermark is the 5th highest latest time among distinct sessions.
    assert s.watermark == t0 + (49 - (SessionRules().min_senders - 1)) * 1000


def test_export_import_round_trip_keeps_open_sessions():
    t0 = 1_700_000_000_000
    s = Sessionizer()
    for i in range(5):
        s.add(ev(f"s{i % 2}", t0 + i))
    restored = Sessionizer()
    for sid in s.drain_dirty():
        restored.import_key(sid, orjson.loads(orjson.dumps(s.export_key(sid))))
    assert restored.add(ev("s0", t0)).duplicate
    a = shape(build_closed_session(c) for c in s.close_all())
    b = shape(build_closed_session(c) for c in restored.close_all())
    assert a == b


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), n_sessions=st.integers(1, 6))
def test_shuffling_within_grace_does_not_change_closed_sessions(seed, n_sessions):
    rng = random.Random(seed)
    grace = 20_000
    t0 = 1_700_000_000_000
    events = []
    for s in range(n_sessions):
        ts = t0 + rng.randint(0, 60 * MIN)
        for i in range(rng.randint(1, 15)):
            ts += rng.choice([1000, 5000, 60_000, 31 * MIN, 45 * MIN])
            kind = rng.choice(["click", "click", "navigate", "scroll", "session-end"] if i > 3 else ["click"])
            events.append(ev(f"u{s}", ts, kind, eid=f"u{s}-{i}"))
    events.sort(key=lambda e: e.timestamp)
    # Shuffle: each event may be delayed by at most `grace` of event time.
    keyed = [(e.timestamp + rng.randint(0, grace // 2), i, e) for i, e in enumerate(events)]
    shuffled = [e for _, _, e in sorted(keyed)]
    rules = SessionRules(gap_ms=30 * MIN, grace_ms=grace)
    in_order, late1 = run(events, rules)
    out_of_order, late2 = run(shuffled, rules)
    assert not late1 and not late2
    assert shape(in_order) == shape(out_of_order)
    assert sum(c["event_count"] for c in out_of_order) == len(events)

"""Event time that one sender cannot drag forward (issue 9, items 3-5): pure sessionizer tests.

Each test asserts zero loss: every event sent is in exactly one closed session, and nothing is
returned as late unless its session already closed through its time.
"""
import random

import orjson
from hypothesis import given, settings, strategies as st

from replaylens.streams.ingest import EventDecoder
from replaylens.streams.sessionizer import SessionRules, Sessionizer, build_closed_session
from replaylens.streams.stage import SessionStage
from replaylens.streams.signals import SignalRules

MIN = 60_000
NOW = 1_700_000_000_000
FUTURE_TOLERANCE_MS = 10 * MIN
decoder = EventDecoder(future_tolerance_ms=FUTURE_TOLERANCE_MS)
RULES = SessionRules(gap_ms=30 * MIN, grace_ms=30_000)


def ev(sid, ts, etype="click", eid=None):
    body = {"session_id": sid, "timestamp": ts, "type": etype, "event_id": eid or f"{sid}-{ts}-{etype}"}
    accepted = decoder.decode(orjson.dumps(body), NOW)
    assert not hasattr(accepted, "reason"), accepted
    return accepted


class Run:
    """Feeds a sessionizer in batches as the worker does: add a batch, advance, take closed."""

    def __init__(self, rules=RULES):
        self.s = Sessionizer(rules)
        self.late, self.closed = [], []

    def batch(self, events, wall_ms):
        for e in events:
            r = self.s.add(e, wall_ms=wall_ms)
            if r.late_reason:
                self.late.append((e.event_id, r.late_reason))
        self.s.advance(wall_ms)
        self.closed += [build_closed_session(c) for c in self.s.take_closed()]

    def finish(self):
        self.closed += [build_closed_session(c) for c in self.s.close_all()]
        return self.closed


def windows_of(closed, sid):
    return [c for c in closed if c["session_id"] == sid]


def event_ids(closed):
    return sorted(e["event_id"] for c in closed for e in c["events"])


def live_sessions(n_sessions, events_each, start, step_ms=2_000):
    """Interleaved sessions, in time order, one event every `step_ms` per session."""
    out = []
    for i in range(events_each):
        for s in range(n_sessions):
            out.append(ev(f"live{s}", start + i * step_ms + s * 10, eid=f"live{s}-{i}"))
    return out


def test_three_events_nine_minutes_ahead_make_nothing_late_and_truncate_nothing():
    """The issue's case: 3 events stamped 9 min ahead (inside the 10-min tolerance), then 300+
    valid events. None is late, every session comes out whole, in one window."""
    run = Run()
    outliers = [ev(f"skewed{i}", NOW + 9 * MIN, eid=f"skewed{i}") for i in range(3)]
    run.batch(outliers, wall_ms=NOW)
    valid = live_sessions(30, 12, NOW - 60_000)
    for i in range(0, len(valid), 40):
        run.batch(valid[i:i + 40], wall_ms=NOW + i)
    assert run.s.watermark < NOW + MIN, "three senders moved the partition's event time"
    assert run.closed == [], "a session closed early"
    closed = run.finish()
    assert run.late == []
    for s in range(30):
        whole = windows_of(closed, f"live{s}")
        assert len(whole) == 1 and whole[0]["event_count"] == 12
    assert event_ids(closed) == sorted([e.event_id for e in valid] + [e.event_id for e in outliers])


def test_one_sender_with_a_clock_ahead_counts_once_however_many_events():
    run = Run()
    run.batch([ev("skewed", NOW + 9 * MIN + i, eid=f"k{i}") for i in range(500)], wall_ms=NOW)
    run.batch(live_sessions(10, 3, NOW), wall_ms=NOW + 1000)
    assert run.s.watermark <= NOW + 3 * 2_000 + 100
    assert run.late == [] and run.closed == []


def test_event_time_still_moves_with_enough_senders_and_closes_idle_sessions():
    run = Run()
    run.batch([ev("old", NOW - 40 * MIN)], wall_ms=NOW)
    run.batch(live_sessions(RULES.min_senders, 2, NOW), wall_ms=NOW + 1)
    assert [c["session_id"] for c in run.closed] == ["old"]


def test_a_session_that_never_existed_is_never_late_whatever_its_age():
    run = Run()
    run.batch(live_sessions(10, 5, NOW), wall_ms=NOW)
    ancient = [ev("never-seen", NOW - 5 * 60 * MIN + i * 1000, eid=f"n{i}") for i in range(5)]
    run.batch(ancient, wall_ms=NOW + 100)
    closed = run.finish()
    assert run.late == []
    assert windows_of(closed, "never-seen")[0]["event_count"] == 5


def test_only_a_session_closed_through_that_time_makes_an_event_late():
    run = Run()
    run.batch([ev("a", NOW), ev("a", NOW + 1000, "session-end")], wall_ms=NOW)
    run.batch(live_sessions(10, 1, NOW + 2 * MIN), wall_ms=NOW + 2 * MIN)
    assert [c["session_id"] for c in run.closed] == ["a"]
    run.batch([ev("a", NOW + 500, eid="replayed"), ev("a", NOW + 3 * MIN, eid="after-end")],
              wall_ms=NOW + 3 * MIN)
    assert [eid for eid, _ in run.late] == ["replayed"]
    assert "already closed" in run.late[0][1]
    closed = run.finish()
    assert [c["event_count"] for c in windows_of(closed, "a")] == [2, 1]


def recording(sid, end, n=48, span_ms=40 * MIN):
    return [ev(sid, end - span_ms + i * span_ms // (n - 1), eid=f"{sid}-r{i}") for i in range(n)]


def test_a_whole_recording_arriving_at_once_is_one_session_placed_by_its_own_time():
    """The issue's case: a 48-event rrweb recording sent when its session ended, on a partition
    with live traffic, read over three batches: one session with all 48 events, nothing late."""
    run = Run()
    wall = NOW
    run.batch(live_sessions(20, 3, NOW), wall_ms=wall)
    rec = recording("recorded", end=NOW - 5 * MIN)
    for i, part in enumerate((rec[:10], rec[10:30], rec[30:])):
        run.batch(part + [ev(f"live{j}", NOW + 10_000 + i * 1000, eid=f"more{i}-{j}") for j in range(20)],
                  wall_ms=wall + (i + 1) * 1000)
    assert windows_of(run.closed, "recorded") == []
    closed = run.finish()
    assert run.late == []
    whole = windows_of(closed, "recorded")
    assert len(whole) == 1 and whole[0]["event_count"] == 48
    assert whole[0]["started_at"] == rec[0].timestamp


def test_an_old_recording_closes_once_wall_time_settles_after_its_last_part():
    run = Run()
    run.batch(live_sessions(20, 2, NOW), wall_ms=NOW)
    rec = recording("recorded", end=NOW - 3 * 60 * MIN)  # its gap ran out long ago
    run.batch(rec[:24], wall_ms=NOW + 1000)
    run.batch(rec[24:], wall_ms=NOW + 2000)
    assert windows_of(run.closed, "recorded") == []
    run.batch([], wall_ms=NOW + 2000 + RULES.grace_ms)
    whole = windows_of(run.closed, "recorded")
    assert len(whole) == 1 and whole[0]["event_count"] == 48 and run.late == []


def outage(run, sid_events_after, pause):
    """A session is open; the worker cannot read for 2 h (ticks go on); then its events arrive."""
    if pause:
        run.s.pause_wall_clock()
    for tick in range(1, 121):
        run.batch([], wall_ms=NOW + tick * MIN)
    if pause:
        run.s.resume_wall_clock(NOW + 121 * MIN)
    run.batch(sid_events_after, wall_ms=NOW + 121 * MIN)
    return run.finish()


def test_wall_clock_paused_while_the_broker_cannot_be_read_keeps_sessions_whole():
    before = [ev("a", NOW, eid="a0"), ev("a", NOW + 1000, eid="a1")]
    after = [ev("a", NOW + 2000, eid="a2"), ev("a", NOW + 3000, eid="a3")]
    paused = Run()
    paused.batch(before, wall_ms=NOW)
    closed = outage(paused, after, pause=True)
    assert paused.late == [] and [c["event_count"] for c in closed] == [4]
    # Without the pause the outage closes the session first: split in two (still nothing lost).
    unpaused = Run()
    unpaused.batch(before, wall_ms=NOW)
    split = outage(unpaused, after, pause=False)
    assert unpaused.late == [] and [c["event_count"] for c in split] == [2, 2]


def test_stage_pause_reaches_partitions_created_while_paused():
    stage = SessionStage(RULES, SignalRules(), decoder)
    stage.sessionizer(0)
    stage.pause_wall_clock()
    assert stage.sessionizer(0).wall_clock_paused and stage.sessionizer(7).wall_clock_paused
    stage.resume_wall_clock(NOW)
    assert not stage.sessionizer(0).wall_clock_paused and not stage.sessionizer(7).wall_clock_paused


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), n_sessions=st.integers(1, 12), n_skewed=st.integers(0, 4),
       batch=st.integers(1, 50))
def test_outliers_and_disorder_within_grace_lose_nothing_and_change_no_session(seed, n_sessions, n_skewed, batch):
    """Any arrival order within the grace period, any batch size, and up to min_senders - 1
    senders with clocks ahead (inside the tolerance): no event late, and the other sessions come
    out exactly as in an in-order run without the outliers."""
    rng = random.Random(seed)
    grace = RULES.grace_ms
    events = []
    for s in range(n_sessions):
        ts = NOW - 10 * 60 * MIN + rng.randint(0, 60 * MIN)
        for i in range(rng.randint(1, 12)):
            ts += rng.choice([1000, 5000, 60_000, 31 * MIN, 45 * MIN])
            kind = rng.choice(["click", "click", "scroll", "session-end"] if i > 2 else ["click"])
            events.append(ev(f"u{s}", ts, kind, eid=f"u{s}-{i}"))
    events.sort(key=lambda e: e.timestamp)
    keyed = [(e.timestamp + rng.randint(0, grace // 2), i, e) for i, e in enumerate(events)]
    shuffled = [e for _, _, e in sorted(keyed)]
    skewed = [ev(f"skewed{k}", NOW + rng.randint(1, FUTURE_TOLERANCE_MS - 1), eid=f"skewed{k}-{j}")
              for k in range(n_skewed) for j in range(rng.randint(1, 5))]
    arrivals = shuffled[:]
    for e in skewed:
        arrivals.insert(rng.randint(0, len(arrivals)), e)

    reference = Run()
    for e in events:
        reference.batch([e], wall_ms=NOW)
    expected = sorted((c["window_id"], tuple(x["event_id"] for x in c["events"])) for c in reference.finish())

    run = Run()
    for i in range(0, len(arrivals), batch):
        run.batch(arrivals[i:i + batch], wall_ms=NOW)
    closed = run.finish()
    assert run.late == []
    assert event_ids(closed) == sorted(e.event_id for e in arrivals)
    got = sorted((c["window_id"], tuple(x["event_id"] for x in c["events"])) for c in closed
                 if not c["session_id"].startswith("skewed"))
    assert got == expected

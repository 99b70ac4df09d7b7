"""The sessionizing stage: one value per flush, and per-message isolation (nothing one message
does can escape; it becomes a dead letter with its reason and origin, and is counted)."""
from __future__ import annotations

import json

import orjson
from hypothesis import given, settings as hsettings, strategies as st

from replaylens.config.settings import Settings
from replaylens.streams.simulator import simulate_bytes
from replaylens.streams.sessionizer import head_key
from replaylens.streams.stage import Flush, Origin, SessionStage, now_ms

NOW = now_ms()


def stage() -> SessionStage:
    return SessionStage.from_settings(Settings())


def valid_messages(sessions: int = 5) -> list[bytes]:
    return [v for _k, v in simulate_bytes(sessions, seed=4)]


POISON = [
    b"[" * 5_000 + b"]" * 5_000,  # nesting far beyond any decoder's recursion limit
    b'{"session_id": "s", "timestamp": 1, "type": "click", "url": "\xff\xfe"}',  # invalid UTF-8 in a string
    b'{"session_id": "s", "event_id": "e", "timestamp": 100000000000000000000000, "type": "click"}',  # > int64
    b'{"session_id": "s", "event_id": "e", "timestamp": -1e+23, "type": "click"}',
    b"\x00\x01\x02",
    b"",
]


def test_poison_between_valid_messages_is_dead_lettered_and_the_rest_goes_on():
    s = stage()
    valid = valid_messages()
    mixed = valid[:10] + POISON + valid[10:]
    for i, raw in enumerate(mixed):
        s.process(0, raw, Origin("events", 0, i, b"k"), NOW)
    out = s.flush([0], close_all=True)
    assert s.counters.accepted == len(valid)
    assert sum(c["event_count"] for c in out.closed) == len(valid)
    assert len(out.dead_letters) == len(POISON)
    for dl in out.dead_letters:
        assert dl["reason"] in {"invalid-json", "invalid-event", "future-timestamp", "internal-error"}
        assert dl["topic"] == "events" and dl["partition"] == 0 and dl["offset"] is not None


def test_an_exception_inside_the_sessionizer_becomes_an_internal_error_dead_letter():
    s = stage()
    valid = valid_messages(1)

    def broken(*_args, **_kwargs):
        raise RecursionError("deep")

    s.sessionizer(0).add = broken  # what any bug in one message's path would do
    s.process(0, valid[0], Origin("events", 0, 7, None), NOW)
    out = s.flush([0])
    assert s.counters.internal_errors == 1 and s.counters.accepted == 0
    [dl] = out.dead_letters
    assert dl["reason"] == "internal-error" and dl["offset"] == 7 and "RecursionError" in dl["error"]
    assert dl["original"] == valid[0].decode()


def test_flush_is_one_value_and_state_changes_follow_the_closed_sessions():
    s = stage()
    for i, raw in enumerate(valid_messages(3)):
        s.process(0, raw, Origin("events", 0, i), NOW)
    first = s.flush([0])
    assert isinstance(first, Flush)
    heads = {head_key(f"sim4-000000{i}") for i in range(3)}
    assert heads <= {key for _p, key, _value in first.state}  # all persisted (heads and pieces)
    last = s.flush([0], close_all=True)
    closed = first.closed + last.closed
    assert len(closed) == 3 and all(c["comparisons"] == [] for c in closed)  # comparisons: the wiring's
    # nothing open: the heads are tombstoned (a head-less piece is never read back)
    assert heads <= {key for _p, key, value in last.state if value is None}
    assert not s.flush([0])  # nothing left: an empty flush is falsy


def test_rekeyed_events_are_handed_out_not_added():
    s = stage()
    raw = valid_messages(1)[0]
    s.process(0, raw, Origin("events", 0, 0, None), NOW, keyed_right=lambda sid: False)
    out = s.flush([0])
    assert s.counters.rekeyed == 1 and s.counters.accepted == 0
    assert [sid for sid, _ in out.rekeyed] == [orjson.loads(raw)["session_id"]]


@hsettings(max_examples=150, deadline=None)
@given(st.binary(max_size=300))
def test_no_bytes_escape_the_stage(raw):
    s = stage()
    s.process(0, raw, Origin("events", 0, 0), NOW)
    out = s.flush([0], close_all=True)
    handled = s.counters.accepted + len(out.dead_letters)
    assert handled == 1


@hsettings(max_examples=100, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                    max_leaves=30),
       st.sampled_from(["click", "navigate", "custom", "session-end", "bogus"]))
def test_no_json_shape_escapes_the_stage(extra, kind):
    s = stage()
    raw = json.dumps({"session_id": "s", "timestamp": NOW, "type": kind, "url": "https://x/", "name": "n",
                      "properties": extra, "target": extra if isinstance(extra, dict) else None}).encode()
    s.process(0, raw, Origin("events", 0, 0), NOW)
    out = s.flush([0], close_all=True)
    assert s.counters.accepted + len(out.dead_letters) == 1


def test_a_closed_session_that_cannot_be_built_is_dead_lettered_and_the_others_go_out(monkeypatch):
    import replaylens.streams.stage as stage_module

    real = stage_module.build_closed_session

    def fails_for_one(closed, rules, max_record_bytes=None):
        if closed.session_id == "sim4-0000001":
            raise ValueError("unforeseen data")
        return real(closed, rules, max_record_bytes)

    monkeypatch.setattr(stage_module, "build_closed_session", fails_for_one)
    s = stage()
    for i, raw in enumerate(valid_messages(3)):
        s.process(0, raw, Origin("events", 0, i), NOW)
    out = s.flush([0], close_all=True)
    assert sorted(c["session_id"] for c in out.closed) == ["sim4-0000000", "sim4-0000002"]
    [dl] = out.dead_letters
    assert dl["reason"] == "internal-error" and dl["session_id"] == "sim4-0000001"
    assert "ValueError" in dl["error"] and len(dl["original"]) <= 4_100
    assert s.counters.internal_errors == 1

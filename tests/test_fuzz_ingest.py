"""Per-message isolation at the byte level: no bytes make the decoder or the sessionizing stage
raise, and whatever is accepted round-trips (re-key topic, state, closed sessions) and fits its
size cap. The inputs of issue 9 item 1 are here by name, then hypothesis fuzzes around them."""
from __future__ import annotations

import json

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from replaylens.schemas.sessions import ClosedSession
from replaylens.streams.ingest import TRUNCATED_FIELD, Accepted, EventDecoder, Rejected
from replaylens.streams.sessionizer import SessionRules
from replaylens.streams.signals import SignalRules
from replaylens.streams.stage import Origin, SessionStage

NOW = 1_763_900_000_000
MAX_EVENT = 4096  # small cap so that fuzzed events reach it
dec = EventDecoder(max_event_bytes=MAX_EVENT)
HEAD = b'{"session_id":"s1","event_id":"e1","type":"click","url":"https://a.example/x",'


def _event(**fields) -> bytes:
    base = {"session_id": "s1", "event_id": "e1", "timestamp": NOW - 5000, "type": "click",
            "url": "https://a.example/x"}
    base.update(fields)
    return orjson.dumps(base)


# Issue 9 item 1, and its neighbours.
NAMED = {
    "nested-2000-in-properties": HEAD + b'"timestamp":1,"properties":' + b"[" * 2000 + b"]" * 2000 + b"}",
    "nested-300-in-unknown-field": HEAD + b'"timestamp":1,"x":' + b"[" * 300 + b"]" * 300 + b"}",
    "nested-300-in-properties": HEAD + b'"timestamp":1,"properties":{"a":' + b"[" * 300 + b"]" * 300 + b"}}",
    "bare-nesting": b"[" * 100_000,
    "invalid-utf8-in-session-id": b'{"session_id":"s\xff","timestamp":1,"type":"click","event_id":"e"}',
    "invalid-utf8-in-property": HEAD + b'"timestamp":1,"properties":{"a":"x\xc3"}}',
    "invalid-utf8-in-unknown-field": HEAD + b'"timestamp":1,"x":"\xed\xa0\x80"}',
    "lone-surrogate-escape": HEAD + b'"timestamp":1,"x":"\\ud800"}',
    "timestamp-beyond-int64": HEAD + b'"timestamp":100000000000000000000000}',
    "timestamp-negative-float": HEAD + b'"timestamp":-1e+23}',
    "timestamp-huge-digit-string": HEAD + b'"timestamp":"' + b"9" * 40 + b'"}',
    "timestamp-nan": HEAD + b'"timestamp":NaN}',
    "timestamp-infinity": HEAD + b'"timestamp":Infinity}',
    "timestamp-1e999": HEAD + b'"timestamp":1e999}',
    "metric-1e999": _event(type="web-vitals")[:-1] + b',"metrics":{"lcp":1e999}}',
    "unknown-field-1e999": _event()[:-1] + b',"x":1e999}',
    "unknown-field-huge-int": _event()[:-1] + b',"x":1' + b"0" * 400 + b"}",
    "property-huge-int": _event()[:-1] + b',"properties":{"a":-1' + b"0" * 40 + b"}}",
    "status-huge": _event(type="network-error")[:-1] + b',"error":{"status":1' + b"0" * 30 + b"}}",
    "status-float": _event(type="network-error")[:-1] + b',"error":{"status":1e300}}',
    "session-id-number": b'{"session_id":1e999,"timestamp":1,"type":"click"}',
    "session-id-huge": _event(session_id="s" * 5000),
    "wrong-types": b'{"session_id":["s"],"timestamp":{},"type":3,"user":"u","target":[],"metrics":"x"}',
    "properties-not-object": _event()[:-1] + b',"properties":[1,2]}',
    "huge-string": _event(properties={"title": "x" * 50_000}),
    "huge-list": _event(properties={"list": list(range(20_000))}),
    "huge-keys": _event(properties={("k" * 3000 + str(i)): 1 for i in range(20)}),
    "huge-value-to-mask": _event(type="input-change", value="4111 1111 1111 1111 " * 3000),
    "empty": b"",
    "not-an-object": b'"just a string"',
    "bom": b"\xef\xbb\xbf" + _event(),
}


def _assert_round_trips(result, explicit: bool = True) -> None:
    """An accepted event can be encoded, decoded again (the re-key path) and fits its cap. With
    `explicit`, a rejection must say what is wrong: the catch-all that keeps unforeseen errors from
    escaping ("could not be processed") must not be what handled it."""
    assert isinstance(result, (Accepted, Rejected))
    if isinstance(result, Rejected):
        assert result.reason in {"invalid-json", "invalid-event", "future-timestamp"} and result.error
        assert not (explicit and "could not be processed" in result.error), result.error
        return
    data = result.json.encode()
    assert len(data) <= MAX_EVENT
    again = dec.decode(data, NOW)
    assert isinstance(again, Accepted), again
    assert (again.session_id, again.event_id, again.timestamp, again.type) == \
           (result.session_id, result.event_id, result.timestamp, result.type)
    # What a closed session and the state topic do with it.
    orjson.dumps({"sessions": [{"events": [orjson.loads(data)]}]})


@pytest.mark.parametrize("name", sorted(NAMED))
def test_named_hostile_inputs_are_rejected_or_round_trip(name):
    _assert_round_trips(dec.decode(NAMED[name], NOW))
    _assert_round_trips(dec.decode(NAMED[name].decode("utf-8", "surrogateescape"), NOW))


def test_the_inputs_of_the_issue_are_rejected_with_a_reason():
    for name in ("nested-2000-in-properties", "invalid-utf8-in-session-id", "invalid-utf8-in-property",
                 "invalid-utf8-in-unknown-field", "nested-300-in-unknown-field", "timestamp-beyond-int64",
                 "timestamp-negative-float", "timestamp-nan", "metric-1e999", "unknown-field-1e999"):
        result = dec.decode(NAMED[name], NOW)
        assert isinstance(result, Rejected), name
    for name in ("invalid-utf8-in-property", "invalid-utf8-in-unknown-field", "invalid-utf8-in-session-id"):
        result = dec.decode(NAMED[name], NOW)
        assert result.reason == "invalid-json" and "UTF-8" in result.error, name
    deep = dec.decode(b'{"session_id":"s","type":"click","timestamp":1,"p":' + b"[" * 3000 + b"]" * 3000 + b"}", NOW)
    assert deep.reason == "invalid-json" and "depth" in deep.error
    big_invalid = dec.decode(HEAD + b'"timestamp":1,"note":"' + b"\xff\xfe" * 50_000 + b'"}', NOW)
    assert big_invalid.reason == "invalid-json" and "UTF-8" in big_invalid.error
    assert "timestamp" in dec.decode(NAMED["timestamp-negative-float"], NOW).error
    assert "deeper than" in dec.decode(NAMED["nested-300-in-properties"], NOW).error


def test_a_big_valid_event_is_capped_and_marked_not_rejected():
    result = dec.decode(NAMED["huge-string"], NOW)
    assert isinstance(result, Accepted) and result.event_id == "e1"
    ev = orjson.loads(result.json)
    assert ev[TRUNCATED_FIELD]["original_bytes"] > 50_000 and ev[TRUNCATED_FIELD]["values_cut"] == 1
    assert ev["properties"]["title"].startswith("xxxx") and ev["properties"]["title"].endswith("[truncated]")
    masked = dec.decode(NAMED["huge-value-to-mask"], NOW)
    assert isinstance(masked, Accepted) and "4111" not in masked.json


def test_a_one_megabyte_event_goes_through_the_default_cap():
    raw = _event(properties={"title": "y" * 1_000_000})
    result = EventDecoder().decode(raw, NOW)
    assert isinstance(result, Accepted) and len(result.json) <= 64 * 1024
    assert orjson.loads(result.json)[TRUNCATED_FIELD]["original_bytes"] == len(raw)


def test_accept_never_raises_on_python_objects_either():
    for obj in ({"session_id": "s", "timestamp": 2**70, "type": "click"}, [1], None,
                {"session_id": "s", "timestamp": 1, "type": "click", "properties": {"a": 2**80}},
                {"session_id": "s", "timestamp": float("inf"), "type": "click"},
                {"session_id": "s", "timestamp": 1, "type": "web-vitals", "metrics": {"lcp": float("nan")}},
                {"session_id": "s", "timestamp": 1, "type": "click", "properties": {"s": {1, 2}}}):
        _assert_round_trips(dec.accept(obj, NOW), explicit=False)


# -- fuzzing -------------------------------------------------------------------------------
json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                         st.floats(allow_nan=False, allow_infinity=False),
                         st.text(max_size=30), st.sampled_from(["click", "navigate", "input-change", "custom"]))
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=6), inner, max_size=4), max_leaves=20)
event_objects = st.fixed_dictionaries(
    {"session_id": st.sampled_from(["s1", "s2", "u:s3"]), "timestamp": st.integers(NOW - 10**7, NOW + 10**6),
     "type": st.sampled_from(["click", "navigate", "input-change", "custom", "session-end", "web-vitals"])},
    optional={k: json_values for k in ["event_id", "url", "user", "target", "error", "metrics", "value",
                                       "name", "properties", "x"]})


def _mutate(data: bytes, position: int, junk: bytes) -> bytes:
    position %= max(1, len(data))
    return data[:position] + junk + data[position + len(junk):]


def _dumps(obj) -> bytes:
    return json.dumps(obj).encode()  # the standard library writes integers of any size


mutated_events = st.builds(_mutate, event_objects.map(_dumps), st.integers(0, 10_000),
                           st.binary(min_size=1, max_size=6))
any_bytes = st.one_of(st.binary(max_size=200), mutated_events, event_objects.map(_dumps),
                      st.sampled_from(sorted(NAMED)).map(NAMED.get))


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(any_bytes)
@example(NAMED["timestamp-negative-float"])
def test_decoder_never_raises_and_accepted_events_round_trip(raw):
    _assert_round_trips(dec.decode(raw, NOW))


def _stage() -> SessionStage:
    return SessionStage(SessionRules(gap_ms=60_000, grace_ms=1_000, max_events=50, max_bytes=8 * 1024),
                        SignalRules(), dec)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(any_bytes, max_size=40), st.integers(0, 3))
def test_stage_never_raises_and_every_message_is_accounted_for(messages, partitions):
    stage = _stage()
    every = range(partitions + 1)
    letters: list[dict] = []
    for i, raw in enumerate(messages):
        origin = Origin("events", i % (partitions + 1), i, b"k")
        # odd: the events topic's path; even: a re-keyed event's
        stage.process(i % (partitions + 1), raw, origin, NOW, rekeyed=not i % 2)
        if i % 7 == 0:
            out = stage.flush(every, NOW + i * 1000)
            letters += out.dead_letters
            for session in out.closed:
                ClosedSession.model_validate(orjson.loads(orjson.dumps(session)))
    out = stage.flush(every, close_all=True)
    letters += out.dead_letters
    for session in out.closed:
        ClosedSession.model_validate(orjson.loads(orjson.dumps(session)))
    c = stage.counters
    assert c.internal_errors == 0, "a rejection must come from a check, not from the catch-all"
    assert c.accepted + c.rejected + c.duplicates == len(messages)
    assert len(letters) == c.rejected
    for letter in letters:
        orjson.dumps(letter)

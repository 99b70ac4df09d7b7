"""Per-message isolation of the rrweb path at the byte level: any bytes on the rrweb topic either
map to events (each of which the decoder accepts or rejects, never raising, and which fit the
event cap once encoded for the events topic) or fail with RrwebError (a dead letter)."""
from __future__ import annotations

import json
from pathlib import Path

import orjson
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from replaylens.streams.rrweb import RrwebError, load_recording, rrweb_to_events  # the rrweb module's home
from replaylens.streams.ingest import Accepted, EventDecoder, Rejected, encode_event

NOW = 1_763_900_000_000
MAX_EVENT = 4096
dec = EventDecoder(max_event_bytes=MAX_EVENT)
FIXTURE = (Path(__file__).parent / "fixtures" / "rrweb" / "rrweb-player_demoit-app_2018.json").read_bytes()


def _map(raw: bytes) -> None:
    try:
        events = rrweb_to_events(load_recording(raw), session_id="fuzz")
    except RrwebError:
        return
    assert isinstance(events, list)
    for ev in events:
        data = encode_event(ev, MAX_EVENT)  # what ingest_rrweb sends to the events topic
        assert data is None or len(data) <= MAX_EVENT
        result = dec.accept(ev, NOW)
        assert isinstance(result, (Accepted, Rejected))
        if data is not None:
            assert isinstance(dec.decode(data, NOW), (Accepted, Rejected))


anything = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=False, allow_infinity=False),
              st.text(max_size=20)),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["type", "data", "timestamp", "source", "id", "x", "y", "positions", "text", "node",
                         "childNodes", "tagName", "attributes", "adds", "removes", "href", "payload", "plugin",
                         "level", "status", "isChecked", "ranges", "tag", "textContent", "parentId"]),
        inner, max_size=6),
    max_leaves=30)
rrweb_event = st.fixed_dictionaries(
    {"type": st.integers(0, 7), "timestamp": st.one_of(st.integers(-2**70, 2**70), st.floats(), st.text(max_size=5)),
     "data": st.one_of(anything, st.fixed_dictionaries({"source": st.integers(0, 16)}, optional={
         "id": anything, "x": anything, "y": anything, "type": st.integers(0, 10), "text": anything,
         "positions": anything, "href": anything, "node": anything, "plugin": anything, "payload": anything}))})
recordings = st.one_of(st.lists(rrweb_event, max_size=25), st.fixed_dictionaries({"events": st.lists(rrweb_event)}),
                       anything)


def _mutate(position: int, junk: bytes) -> bytes:
    position %= len(FIXTURE)
    return FIXTURE[:position] + junk + FIXTURE[position + len(junk):]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.binary(max_size=300), recordings.map(lambda r: json.dumps(r).encode()),
                 st.builds(_mutate, st.integers(0, 10**6), st.binary(min_size=1, max_size=8))))
@example(b"[]")
@example(b"[" * 5000)
@example(b'[{"type":4,"timestamp":1e999,"data":{"href":"x"}}]')
@example(b'[{"type":4,"timestamp":-1e+23,"data":{"href":"https://a.example/"}}]')
@example(b'[{"type":4,"timestamp":100000000000000000000000,"data":{"href":"https://a.example/"}}]')
@example(b'[{"type":4,"timestamp":1,"data":{"href":"https://a.example/\xff"}}]')
@example(b'[{"type":2,"timestamp":1,"data":{"node":' + b'{"id":1,"type":2,"tagName":"div","childNodes":[' * 400
         + b"]}" * 400 + b"}}]")
def test_rrweb_mapping_never_raises_anything_but_rrweb_error(raw):
    _map(raw)


def test_a_huge_typed_value_in_a_recording_is_capped_for_the_events_topic():
    snapshot = {"type": 2, "timestamp": NOW - 5000, "data": {"node": {"id": 1, "type": 0, "childNodes": [
        {"id": 2, "type": 2, "tagName": "input", "attributes": {"id": "q"}, "childNodes": []}]}}}
    meta = {"type": 4, "timestamp": NOW - 6000, "data": {"href": "https://a.example/", "width": 1, "height": 1}}
    typed = {"type": 3, "timestamp": NOW - 4000, "data": {"source": 5, "id": 2, "text": "y" * 2_000_000}}
    events = rrweb_to_events(load_recording(orjson.dumps([meta, snapshot, typed])), session_id="s")
    encoded = [encode_event(ev, MAX_EVENT) for ev in events]
    assert encoded and all(e is not None and len(e) <= MAX_EVENT for e in encoded)

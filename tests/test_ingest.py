"""Decode-once ingest: clear rejections, ISO timestamps, masking, and a fast path that never
accepts what the pydantic model would reject."""
import orjson
from hypothesis import given, settings, strategies as st

from replaylens.schemas.events import Event
from replaylens.streams.ingest import Accepted, EventDecoder, Rejected, _fast_valid
from replaylens.config.privacy import MASK, Masker

NOW = 1_763_900_000_000
dec = EventDecoder()


def decode(obj):
    return dec.decode(orjson.dumps(obj) if not isinstance(obj, bytes) else obj, NOW)


def test_valid_event_keeps_unknown_fields_and_raw_json():
    r = decode({"event_id": "a", "session_id": "u:1", "timestamp": NOW, "type": "click", "extra": {"k": 1}})
    assert isinstance(r, Accepted) and orjson.loads(r.json)["extra"] == {"k": 1}


def test_iso_timestamp_is_normalized_to_epoch_ms():
    r = decode({"event_id": "a", "session_id": "s", "timestamp": "2025-11-23T12:00:00Z", "type": "scroll"})
    assert isinstance(r, Accepted) and r.timestamp == 1763899200000
    assert orjson.loads(r.json)["timestamp"] == 1763899200000


def test_rejections_say_why():
    assert decode(b"{not json").reason == "invalid-json"
    assert "session_id" in decode({"timestamp": NOW, "type": "click"}).error
    assert "type" in decode({"session_id": "s", "timestamp": NOW, "type": "hover"}).error
    assert "url" in decode({"session_id": "s", "timestamp": NOW, "type": "navigate"}).error
    r = decode({"session_id": "s", "timestamp": NOW + 86_400_000, "type": "click"})
    assert r.reason == "future-timestamp" and "ahead" in r.error
    assert decode(b"[1,2]").reason == "invalid-event"


def test_missing_event_id_is_derived_deterministically():
    raw = orjson.dumps({"session_id": "s", "timestamp": NOW, "type": "click"})
    a, b = dec.decode(raw, NOW), dec.decode(raw, NOW)
    assert a.event_id == b.event_id and a.event_id.startswith("h-")


def test_typed_values_and_emails_and_cards_are_masked_by_default():
    r = decode({"event_id": "a", "session_id": "s", "timestamp": NOW, "type": "input-change",
                "target": {"selector": "input#email", "text": "mail me at jo@example.com"},
                "value": "4111 1111 1111 1111"})
    body = orjson.loads(r.json)
    assert body["value"] == MASK and "jo@example.com" not in r.json and "4111" not in r.json


def test_a_setting_lets_an_allowed_field_through():
    d = EventDecoder(Masker(allowed_fields=["input#search"]))
    r = d.decode(orjson.dumps({"event_id": "a", "session_id": "s", "timestamp": NOW, "type": "input-change",
                               "target": {"selector": "input#search"}, "value": "red shoes"}), NOW)
    assert orjson.loads(r.json)["value"] == "red shoes"


scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 10**13), st.floats(allow_nan=False),
                    st.text(max_size=5), st.sampled_from(["click", "navigate", "custom", "web-vitals"]))
nested = st.one_of(scalars, st.dictionaries(
    st.sampled_from(["id", "email", "selector", "text", "status", "message", "lcp", "cls", "x"]), scalars, max_size=3))
events = st.fixed_dictionaries({}, optional={
    k: nested for k in ["event_id", "session_id", "timestamp", "type", "url", "user", "target", "error",
                        "metrics", "value", "name", "properties", "device"]})


@settings(max_examples=400, deadline=None)
@given(events)
def test_fast_path_never_accepts_what_the_model_rejects(obj):
    if _fast_valid(obj):
        model = Event.model_validate(obj)
        assert model.timestamp == obj["timestamp"] and model.session_id == obj["session_id"]


json_values = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-2**63, 2**63 - 1), st.floats(allow_nan=False),
                                     st.text(max_size=8)),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                           max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(st.one_of(events, json_values))
def test_decoder_never_raises_on_any_json(obj):
    result = dec.decode(orjson.dumps(obj), NOW)
    assert isinstance(result, (Accepted, Rejected))
    if isinstance(result, Rejected):
        assert result.reason in {"invalid-json", "invalid-event", "future-timestamp"} and result.error


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64))
def test_decoder_never_raises_on_any_bytes(raw):
    assert isinstance(dec.decode(raw, NOW), (Accepted, Rejected))

"""Masking on the bytes (streams/ingest.py `_masked_in_place`): an event whose masking only
swaps strings (an email or org name for its keyed hash, a typed value, a URL, a property) is
masked without the decode/re-encode round trip. It must give the same decoded event as the slow
path (masking the decoded dict), and nothing it should mask may pass: escapes, duplicate keys,
repeated values and other JSON spellings must send it down the slow path, never through."""
from __future__ import annotations

import json
from pathlib import Path

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from replaylens.config.privacy import PrivacyPolicy
from replaylens.streams.ingest import Accepted, EventDecoder, _fast_decoder, encode_event

NOW = 1_763_900_000_000
POLICY = PrivacyPolicy(identity_secret="k")
dec = EventDecoder(POLICY)

EMAILS = ["ana.3@example.com", "x@y.co", 'we"ird@q.io', "back\\slash@q.io", "ünï@ex.de", "email", "url"]
SECRET_URLS = ["https://s.test/reset?token=abc123&page=2", "https://s.test/u/eyJhbGciOiJI.eyJzdWIiOjF9.sig",
               "https://s.test/?email=bob%40x.io", "https://s.test/plain", "https://s.test/a#frag"]
TEXTS = ["Buy now", "mail bob@x.io", "card 4111 1111 1111 1111", "call +1 555 123 4567", "Shoes", "email",
         'quote " in it', "ünïcode", ""]
# and the rrweb translator's measurements (kept as numbers, bools, their words; `checked` is not one)
PROP_KEYS = ["referrer", "page", "price", "name", "q", "email", "value", "secret_token",
             "node_id", "duration_ms", "pointer", "kind", "response", "checked"]
PROP_VALUES = st.one_of(st.sampled_from(TEXTS + EMAILS + SECRET_URLS + ["mouse", "mutation"]),
                        st.integers(-5, 10**6), st.none(),
                        st.booleans(), st.floats(allow_nan=False, allow_infinity=False),
                        st.dictionaries(st.sampled_from(PROP_KEYS), st.sampled_from(TEXTS), max_size=2))


def _ctx(fields: dict) -> st.SearchStrategy:
    return st.fixed_dictionaries({}, optional=fields)


events = st.fixed_dictionaries(
    {"session_id": st.sampled_from(["s1", "ana.3@example.com"]), "event_id": st.sampled_from(["e1", "x@y.co"]),
     "timestamp": st.integers(NOW - 10**6, NOW), "type": st.sampled_from(["click", "input-change", "web-vitals"])},
    optional={
        "url": st.sampled_from(SECRET_URLS),
        "value": st.sampled_from(TEXTS + EMAILS),
        "user": _ctx({"id": st.sampled_from(["u1", "ana.3@example.com"]), "email": st.sampled_from(EMAILS)}),
        "org": _ctx({"name": st.sampled_from(["Acme", "x@y.co", "hmac:0123"])}),
        "target": _ctx({"selector": st.sampled_from(["input#search", "a.nav"]), "text": st.sampled_from(TEXTS)}),
        "error": _ctx({"message": st.sampled_from(TEXTS), "request_url": st.sampled_from(SECRET_URLS)}),
        "device": _ctx({"os": st.sampled_from(["iOS 18", "x@y.co", "Shoes"])}),
        "properties": st.one_of(st.none(), st.dictionaries(st.sampled_from(PROP_KEYS), PROP_VALUES, max_size=3)),
    })


def _spellings(obj: dict) -> list[bytes]:
    """The same event written as different producers write it."""
    return [orjson.dumps(obj), json.dumps(obj).encode(), json.dumps(obj, ensure_ascii=True).encode(),
            json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()]


def _slow(raw: bytes) -> Accepted:
    """What the decoder gives without its fast path: the decoded dict masked and re-encoded."""
    result = dec._validated(orjson.loads(raw), NOW, raw)
    assert isinstance(result, Accepted)
    return result


def _secrets(obj: dict) -> list[str]:
    """Values that masking replaces and that must not survive anywhere in the output."""
    out = [obj.get("value")] + [obj.get("user", {}).get("email"), obj.get("org", {}).get("name")]
    return [s for s in out if s and len(s) > 5 and not s.startswith("hmac:") and s not in ("email",)]


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events)
def test_masking_on_the_bytes_equals_masking_the_decoded_event(obj):
    for raw in _spellings(obj):
        fast, slow = dec.decode(raw, NOW), _slow(raw)
        assert isinstance(fast, Accepted)
        assert orjson.loads(fast.json) == orjson.loads(slow.json)
        assert (fast.session_id, fast.event_id, fast.timestamp, fast.type) == (
            slow.session_id, slow.event_id, slow.timestamp, slow.type)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events, st.sampled_from(["user", "org", "value", "url", "target"]))
def test_a_duplicate_key_never_lets_a_masked_value_through(obj, field):
    """An earlier duplicate of a field that needs masking (which every JSON parser drops) must
    not stay in the kept bytes: the swap on the bytes only happens when the key is there once."""
    hidden = {"user": '"user":{"email":"hidden.one@leak.io"},', "org": '"org":{"name":"hidden.one@leak.io"},',
              "value": '"value":"hidden.one@leak.io",', "url": '"url":"https://l.test/?token=hidden.one@leak.io",',
              "target": '"target":{"text":"hidden.one@leak.io"},'}[field]
    masked_later = {"user": {"email": "later@x.io"}, "org": {"name": "Later Inc"}, "value": "later",
                    "url": "https://s.test/?token=later", "target": {"text": "later@x.io"}}[field]
    raw = b"{" + hidden.encode() + orjson.dumps({**obj, field: masked_later})[1:]
    result = dec.decode(raw, NOW)
    assert isinstance(result, Accepted)
    assert "hidden.one" not in result.json
    assert orjson.loads(result.json) == orjson.loads(_slow(raw).json)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events)
def test_nothing_masking_replaces_survives_in_the_output(obj):
    for raw in _spellings(obj):
        text = dec.decode(raw, NOW).json
        for secret in _secrets(obj):
            if secret not in (obj["session_id"], obj["event_id"], obj.get("user", {}).get("id"),
                              obj.get("device", {}).get("os")) and not _kept_elsewhere(obj, secret):
                assert json.dumps(secret)[1:-1] not in text and secret not in text


def _kept_elsewhere(obj: dict, secret: str) -> bool:
    """A secret that also sits in a field masking leaves alone or allows (at any depth, whole or
    as part of a longer text) legitimately stays."""
    props = obj.get("properties") or {}
    kept = [v for k, v in props.items() if POLICY.property_allowed(k)]
    kept += [obj.get("target"), obj.get("error"), obj.get("url")]
    return any(secret in orjson.dumps(v).decode() or json.dumps(secret)[1:-1] in orjson.dumps(v).decode()
               for v in kept if v is not None)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events)
def test_the_swaps_are_empty_exactly_when_the_pre_check_says_nothing_to_mask(obj):
    """The original bytes are kept only when `event_needs_masking` (the decoded-dict rule) is
    false, as before the swaps existed."""
    swaps = POLICY.masking_swaps(_fast_decoder.decode(orjson.dumps(obj)))
    sub = lambda name, field: (obj.get(name) or {}).get(field)  # noqa: E731
    needs = POLICY.event_needs_masking(obj.get("value"), obj.get("url"), sub("target", "text"),
                                       sub("error", "message"), sub("error", "request_url"),
                                       obj.get("properties"), sub("user", "email"), sub("org", "name"))
    assert (swaps == []) == (not needs)


def test_the_common_cases_take_the_bytes_path():
    """Not a speed test: the cases the simulator sends most are swapped on the bytes (the
    decoded-dict path would give the same event; this says the cheaper path is the one used)."""
    cases = [
        {"user": {"id": "u1", "email": "ana.3@example.com"}},
        {"org": {"name": "Acme"}},
        {"value": "secret typed", "target": {"selector": "input#pw"}},
        {"properties": {"referrer": "https://www.google.com/", "price": 3}},
        {"url": "https://s.test/reset?token=abc123"},
    ]
    for extra in cases:
        raw = orjson.dumps({"session_id": "s1", "event_id": "e1", "timestamp": NOW, "type": "click", **extra})
        swapped = dec._masked_in_place(raw, POLICY.masking_swaps(_fast_decoder.decode(raw)))
        assert swapped is not None, extra
        assert orjson.loads(swapped) == orjson.loads(_slow(raw).json)


def test_simulated_and_recorded_events_decode_to_the_same_bytes_as_the_slow_path():
    """Compact producers (the simulator, rrweb recordings mapped for the events topic, with a
    user email) get byte for byte what the slow path writes."""
    from replaylens.streams.rrweb.mapping import map_recording
    from replaylens.streams.simulator import simulate_bytes

    raws = [raw for _key, raw in simulate_bytes(300, seed=5)]
    for path in sorted((Path(__file__).parent / "fixtures" / "rrweb").glob("*.json")):
        mapped = map_recording(orjson.loads(path.read_bytes()), session_id="rr",
                               user={"id": "u", "email": "ann@example.com"})
        raws += [b for b in (encode_event(ev, 64 * 1024) for ev in mapped.events) if b]
    assert len(raws) > 3000
    for raw in raws:
        assert dec.decode(raw, NOW).json == _slow(raw).json


HOSTILE = {
    "same-email-twice": b'{"user":{"email":"a@x.io"},"user":{"email":"a@x.io"},',
    "same-value-twice": b'{"value":"a@x.io","value":"a@x.io",',
    "same-org-twice": b'{"org":{"name":"a@x.io"},"org":{"name":"a@x.io"},',
    "email-key-in-escaped-key": b'{"properties":{"q\\"email":"a@x.io"},"user":{"email":"a@x.io"},',
    "email-key-in-a-value-first": b'{"device":{"os":"\\"email"},"user":{"email":"a@x.io"},',
    "escaped-email": b'{"user":{"email":"a\\u0040x.io"},',
    "email-under-device-first": b'{"device":{"email":"a@x.io"},"user":{"email":"a@x.io"},',
}


def test_hostile_spellings_never_keep_the_value_masking_replaces():
    for name, head in HOSTILE.items():
        raw = head + b'"session_id":"s1","event_id":"e1","timestamp":%d,"type":"click"}' % NOW
        result = dec.decode(raw, NOW)
        assert isinstance(result, Accepted), name
        kept = orjson.loads(result.json)
        assert orjson.loads(result.json) == orjson.loads(_slow(raw).json), name
        # the device's email is not a field masking touches: only the user's must be hashed
        leftover = result.json.replace('"device":{"email":"a@x.io"}', "")
        assert "a@x.io" not in leftover and "a\\u0040x.io" not in leftover, (name, kept)

"""Duplicate keys (streams/ingest.py `_no_hidden_values`): JSON parsers keep a duplicate key's
last value, so an event can look clean while its original bytes still hold an earlier value
(an email, a card number, a typed value) that no masking check has seen. Such an event is still
accepted, with the last value as before, but what is kept (buffered, state, closed sessions,
re-key topic) is re-encoded from the decoded value and holds none of the hidden text."""
from __future__ import annotations

import json

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from replaylens.config.privacy import PrivacyPolicy
from replaylens.schemas.events import EVENT_TYPES
from replaylens.streams.ingest import (Accepted, EventDecoder, Rejected, _dict_keys, _fast_decoder, _no_hidden_values,
                                      _struct_keys)
from replaylens.streams.sessionizer import SessionRules
from replaylens.streams.signals import SignalRules
from replaylens.streams.stage import Origin, SessionStage, dead_letter

NOW = 1_763_900_000_000
dec = EventDecoder(PrivacyPolicy(identity_secret="k"))
HEAD = '"session_id":"s1","event_id":"e1","timestamp":%d,"type":"click"' % NOW
HIDDEN = ["ann.hidden@leak.io", "4111 1111 1111 1111", "hidden typed secret"]


def _decoded(raw: bytes) -> Accepted:
    result = dec.decode(raw, NOW)
    assert isinstance(result, Accepted), result
    return result


def _slow(raw: bytes) -> Accepted:
    result = dec._validated(orjson.loads(raw), NOW, raw)
    assert isinstance(result, Accepted)
    return result


# (name, the event's members with an earlier duplicate holding "ann.hidden@leak.io")
CASES = {
    "top-level object": '"user":{"email":"ann.hidden@leak.io"},"user":{"id":"1"}',
    "top-level value then null": '"value":"ann.hidden@leak.io","value":null',
    "top-level value then clean": '"value":"ann.hidden@leak.io","value":"x"',
    "url then clean url": '"url":"https://s.test/?e=ann.hidden@leak.io","url":"https://s.test/"',
    "inside user": '"user":{"email":"ann.hidden@leak.io","email":null,"id":"1"}',
    "inside target": '"target":{"text":"ann.hidden@leak.io","selector":"a","text":"Buy"}',
    "inside device (not a masked field)": '"device":{"os":"ann.hidden@leak.io","os":"iOS"}',
    "inside error": '"error":{"message":"ann.hidden@leak.io","message":"boom","status":500}',
    "error object twice": '"error":{"request_url":"https://a.test/?u=ann.hidden@leak.io"},"error":{"status":1}',
    "metrics hides a property": '"properties":{"q":"ann.hidden@leak.io"},"metrics":{"lcp":1},"properties":{"q":1}',
    "inside properties": '"properties":{"q":"ann.hidden@leak.io","q":2}',
    "inside nested properties": '"properties":{"a":{"b":"ann.hidden@leak.io","b":null}}',
    "escaped key": '"\\u0076alue":"ann.hidden@leak.io","value":null',
    "escaped key inside": '"user":{"\\u0065mail":"ann.hidden@leak.io","email":null}',
    "whitespace around colon": '"value" : "ann.hidden@leak.io" ,\n\t"value"\r\n:\r\nnull',
    "whitespace before null": '"value":"ann.hidden@leak.io","value": null',
    "string starting with a colon": '"value":"ann.hidden@leak.io","value":":null"',
    "with an unknown field (dict path)": '"extra":1,"user":{"email":"ann.hidden@leak.io"},"user":{"id":"1"}',
    "later duplicate after an earlier null": '"value":null,"value":"ann.hidden@leak.io","value":null',
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_duplicate_key_keeps_the_last_value_and_no_hidden_one(name):
    raw = ("{" + HEAD + "," + CASES[name] + "}").encode()
    result = _decoded(raw)
    assert "ann.hidden" not in result.json, name
    assert "leak.io" not in result.json, name
    assert orjson.loads(result.json) == orjson.loads(_slow(raw).json), name  # both paths agree


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_same_duplicates_without_an_event_id_or_in_another_order(name):
    """The derived-id path and keys after the duplicates."""
    head = HEAD.replace('"event_id":"e1",', "")
    for raw in (("{" + head + "," + CASES[name] + "}").encode(), ("{" + CASES[name] + "," + head + "}").encode()):
        result = _decoded(raw)
        assert "leak.io" not in result.json, (name, raw)


def test_the_last_value_wins_as_every_parser_reads_it():
    kept = orjson.loads(_decoded(('{' + HEAD + ',"device":{"os":"Linux"},"device":{"os":"iOS"}}').encode()).json)
    assert kept["device"] == {"os": "iOS"}
    kept = orjson.loads(_decoded(('{' + HEAD + ',"properties":{"q":"a","q":2}}').encode()).json)
    assert kept["properties"] == {"q": 2}


def test_events_without_duplicates_still_keep_their_original_bytes():
    """The hot path: compact or not, with nulls, strings starting with `:` or holding `":`-like
    text: kept byte for byte (a false alarm would only cost a re-encoding, not be wrong)."""
    for members in ['"url":"https://s.test/a"', '"properties":null,"url":null,"user":{"id":"1","email":null}',
                    '"device":{"os":"iOS 18"}, "metrics" : {"lcp": 1.5, "cls": null}',
                    '"properties":{"price":3}', '"user":{"id":"null"}']:
        raw = ("{" + HEAD + "," + members + "}").encode()
        assert _decoded(raw).json == raw.decode(), members


def test_a_rejected_duplicate_key_message_is_dead_lettered_masked():
    raw = ('{"session_id":"s1","timestamp":%d,"type":"hover","user":{"email":"ann.hidden@leak.io"},'
           '"value":"hidden typed secret","user":{"id":"1"},"value":null}' % NOW).encode()
    result = dec.decode(raw, NOW)
    assert isinstance(result, Rejected)
    letter = dead_letter(raw, result.reason, result.error, Origin("events", 0, 1, b"s1"), result.session_id, NOW)
    text = orjson.dumps(letter).decode()
    assert "ann.hidden" not in text and "hidden typed secret" not in text


def test_nothing_hidden_reaches_state_closed_sessions_or_the_rekey_topic():
    stage = SessionStage(SessionRules(gap_ms=60_000, grace_ms=1_000, max_events=50, max_bytes=64 * 1024),
                         SignalRules(), dec)
    for i, members in enumerate(CASES.values()):
        raw = ('{"session_id":"s1","event_id":"e%d","timestamp":%d,"type":"click",%s}'
               % (i, NOW - 10_000 + i, members)).encode()
        assert stage.process(0, raw, Origin("events", 0, i, b"s1"), NOW) is not None
        stage.process(0, raw.replace(b'"s1"', b'"s2"'), Origin("events", 0, i, b"s2"), NOW,
                      keyed_right=lambda sid: sid == "s1")
    first = stage.flush([0], NOW)
    out = stage.flush([0], close_all=True)
    state, rekeyed = first.state, first.rekeyed + out.rekeyed
    assert state and out.closed and len(rekeyed) == len(CASES)
    for blob in ([v for _p, _k, v in state if v] + [orjson.dumps(c) for c in out.closed]
                 + [text.encode() for _sid, text in rekeyed]):
        assert b"leak.io" not in blob


# -- property: an injected earlier duplicate never survives ---------------------------------
SECRETS = st.sampled_from(HIDDEN)
CTX_FIELDS = ["id", "email", "name", "os", "text", "selector"]
PLAIN = st.sampled_from(["Shoes", "iOS 18", "https://s.test/p", "", ":colon", "u1"])
events = st.fixed_dictionaries(
    {"session_id": st.sampled_from(["s1", "s2"]), "event_id": st.sampled_from(["e1", "e2"]),
     "timestamp": st.integers(NOW - 10**6, NOW), "type": st.sampled_from(sorted(EVENT_TYPES - {"navigate", "custom"}))},
    optional={
        "url": PLAIN, "value": st.one_of(st.none(), PLAIN), "name": PLAIN,
        "user": st.dictionaries(st.sampled_from(CTX_FIELDS), st.one_of(st.none(), PLAIN), max_size=3),
        "target": st.dictionaries(st.sampled_from(CTX_FIELDS), PLAIN, max_size=2),
        "device": st.dictionaries(st.sampled_from(CTX_FIELDS), PLAIN, max_size=2),
        "error": st.fixed_dictionaries({}, optional={"message": PLAIN, "status": st.integers(100, 599)}),
        "metrics": st.fixed_dictionaries({}, optional={"lcp": st.floats(0, 10**4), "cls": st.none()}),
        "properties": st.one_of(st.none(), st.dictionaries(
            st.sampled_from(["q", "price", "page"]), st.one_of(st.none(), PLAIN, st.integers(0, 99)), max_size=3)),
    })


def _spell(key: str, escaped: bool) -> str:
    return '"' + ("".join(f"\\u{ord(c):04x}" for c in key[:1]) + key[1:] if escaped else key) + '"'


@st.composite
def with_hidden_duplicate(draw):
    """(raw bytes, hidden text): an event with an earlier duplicate of one of its keys (at the
    top level, in a context object or in properties) holding a secret, in various spellings."""
    obj = draw(events)
    secret = draw(SECRETS)
    holders = [None] + [k for k in ("user", "target", "device", "error", "properties") if obj.get(k)]
    holder = draw(st.sampled_from(holders))
    key = draw(st.sampled_from(sorted(obj if holder is None else obj[holder])))
    hidden_value = draw(st.sampled_from([json.dumps(secret), json.dumps({"email": secret}),
                                         json.dumps([secret]), json.dumps({"text": secret, "x": None})]))
    gap = draw(st.sampled_from(["", " ", "\n\t"]))
    member = _spell(key, draw(st.booleans())) + gap + ":" + gap + hidden_value + ","
    if holder is None:
        raw = "{" + member + json.dumps(obj, separators=(",", gap + ":"))[1:]
    else:
        encoded = json.dumps(obj, separators=(",", ":"))
        marker = json.dumps(holder) + ":{"
        at = encoded.index(marker) + len(marker)
        raw = encoded[:at] + member + encoded[at:]
    return raw.encode(), secret


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(with_hidden_duplicate())
def test_no_injected_earlier_duplicate_survives_in_an_accepted_event(case):
    raw, secret = case
    orjson.loads(raw)  # still valid JSON
    result = dec.decode(raw, NOW)
    if isinstance(result, Accepted):
        assert secret not in result.json and json.dumps(secret)[1:-1] not in result.json
        # (the card's digit groups, not "4111" alone: a random metric such as 1.2284864111932166 holds that)
        assert "4111 1111" not in result.json and "hidden" not in result.json
        assert orjson.loads(result.json) == orjson.loads(_slow(raw).json)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events)
def test_the_struct_key_count_is_the_decoded_dicts(obj):
    """`_struct_keys` reads the mirror's fields by position: it must count what `_dict_keys`
    counts on the same event decoded as a dict (else clean events would lose the fast path, or
    worse). And a clean event passes the check in every spelling (unless a string starts with
    `:`, a false alarm that only costs a re-encoding)."""
    for raw in (orjson.dumps(obj), json.dumps(obj).encode(), json.dumps(obj, indent=2).encode()):
        assert _struct_keys(_fast_decoder.decode(raw)) == _dict_keys(orjson.loads(raw))
        assert _no_hidden_values(raw, _dict_keys(orjson.loads(raw))) or b'":colon"' in raw

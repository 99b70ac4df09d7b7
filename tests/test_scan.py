"""The compiled byte scans (streams/_scan.c) and their pure-Python twins (streams/scan.py) give
the same result on any bytes. `make .venv/.installed` builds the compiled module: its absence here
is a failed build, not a reason to skip."""
from __future__ import annotations

import json

import msgspec
import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from replaylens.streams import _scan, scan
from replaylens.streams.ingest import _dict_keys, _fast_decoder, _present_keys, _struct_keys

# Bytes close to what the scan looks for: quotes, colons, nulls, JSON whitespace.
TOKENS = [b'"', b":", b"null", b"nul", b"n", b"u", b"l", b" ", b"\t", b"\n", b"\r", b'":', b'":null', b"\\",
          b"{", b"}", b",", b"x", b"\xff", b"\x00"]
near_json = st.lists(st.sampled_from(TOKENS), max_size=40).map(b"".join)
json_text = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                         lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner,
                                                                                     max_size=3),
                         max_leaves=12).map(lambda v: json.dumps(v, indent=None).encode())


def test_the_compiled_module_is_the_one_in_use():
    assert scan.COMPILED and scan.keyed_values is _scan.keyed_values
    assert _present_keys is _scan.present_keys


@settings(max_examples=1000, deadline=None)
@given(st.one_of(st.binary(max_size=300), near_json, json_text))
def test_keyed_values_compiled_and_fallback_agree(raw):
    assert _scan.keyed_values(raw) == scan.keyed_values_py(raw)


def test_keyed_values_examples():
    for raw, expected in [(b"", 0), (b'"a":1', 1), (b'"a" :\n null', 0), (b'"a":nul', 1), (b'"a": n u l l x', 0),
                          (b'":":null', 1), (b'{"a":{"b":null,"c":[1]}}', 2), (b'":', 1), (b'"', 0)]:
        assert _scan.keyed_values(raw) == scan.keyed_values_py(raw) == expected, raw


# -- present_keys: the decoded side of the proof, compiled vs streams/ingest.py `_struct_keys` --
PLAIN = st.one_of(st.none(), st.sampled_from(["Shoes", "", ":x", "a@b.co"]))
CTX = st.dictionaries(st.sampled_from(["id", "email", "name", "os", "text", "selector", "city"]), PLAIN, max_size=4)
PROPERTY_VALUES = st.recursive(st.none() | st.booleans() | st.integers(-99, 99) | st.text(max_size=3),
                               lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner,
                                                                                           max_size=3),
                               max_leaves=10)
events = st.fixed_dictionaries(
    {"session_id": st.just("s1"), "timestamp": st.integers(0, 2**40), "type": st.sampled_from(["click", "scroll"])},
    optional={"event_id": st.one_of(st.none(), st.just("e1")), "url": PLAIN, "value": PLAIN, "name": PLAIN,
              "user": st.one_of(st.none(), CTX), "org": CTX, "device": CTX, "location": CTX, "target": CTX,
              "error": st.one_of(st.none(), st.fixed_dictionaries({}, optional={"message": PLAIN,
                                                                                "status": st.one_of(st.none(), st.integers(0, 599))})),
              "metrics": st.fixed_dictionaries({}, optional={"lcp": st.one_of(st.none(), st.floats(0, 1e4)),
                                                             "cls": st.none()}),
              "properties": st.one_of(st.none(), st.dictionaries(st.text(max_size=4), PROPERTY_VALUES, max_size=4))})


def _decoded_event(raw: bytes):
    try:
        return _fast_decoder.decode(raw)
    except (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError):
        return None


@settings(max_examples=500, deadline=None)
@given(events)
def test_present_keys_compiled_and_fallback_agree_on_events(obj):
    raw = orjson.dumps(obj)
    ev = _fast_decoder.decode(raw)
    assert _scan.present_keys(ev) == _struct_keys(ev) == _dict_keys(orjson.loads(raw))


@settings(max_examples=500, deadline=None)
@given(events.map(orjson.dumps), st.integers(0, 10_000), st.binary(min_size=1, max_size=4))
def test_present_keys_agree_on_mutated_bytes(raw, position, junk):
    """Arbitrary bytes near events: whatever the mirror decodes, both counts agree."""
    position %= len(raw)
    ev = _decoded_event(raw[:position] + junk + raw[position + len(junk):])
    if ev is not None:
        assert _scan.present_keys(ev) == _struct_keys(ev)


# -- replace_once: a masked value swapped on the bytes ---------------------------------------
KEYS = st.sampled_from([b'"email"', b'"value"', b'"url"', b'"', b""])
VALUES = st.sampled_from([b':"a@b.co"', b':"x"', b':', b'', b':"a\\"'])
near_event = st.lists(st.sampled_from([b'"email"', b'"value"', b'"url"', b':"a@b.co"', b':"x"', b",", b"{", b"}",
                                       b"\\", b'"', b":", b"a@b.co", b"\xff"]), max_size=12).map(b"".join)


@settings(max_examples=1000, deadline=None)
@given(st.one_of(near_event, st.binary(max_size=60)), KEYS, VALUES, st.binary(max_size=12))
def test_replace_once_compiled_and_fallback_agree(raw, key_token, value_token, replacement):
    assert _scan.replace_once(raw, key_token, value_token, replacement) == \
        scan.replace_once_py(raw, key_token, value_token, replacement)


def test_replace_once_examples():
    raw = b'{"user":{"email":"a@b.co"},"x":1}'
    for replace in (_scan.replace_once, scan.replace_once_py):
        assert replace(raw, b'"email"', b':"a@b.co"', b'"hmac:1"') == b'{"user":{"email":"hmac:1"},"x":1}'
        assert replace(raw, b'"email"', b':"other"', b'"h"') is None  # another value
        assert replace(raw + b'"email"', b'"email"', b':"a@b.co"', b'"h"') is None  # the key twice
        assert replace(raw.replace(b"a@", b"a\\u0040"), b'"email"', b':"a@b.co"', b'"h"') is None  # an escape

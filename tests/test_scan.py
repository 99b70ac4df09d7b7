"""The compiled byte scans (streams/_scan.c) and their pure-Python twins (streams/scan.py) give
the same result on any bytes. `make .venv/.installed` builds the compiled module: its absence here
is a failed build, not a reason to skip."""
from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from replaylens.streams import _scan, scan

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


@settings(max_examples=1000, deadline=None)
@given(st.one_of(st.binary(max_size=300), near_json, json_text))
def test_keyed_values_compiled_and_fallback_agree(raw):
    assert _scan.keyed_values(raw) == scan.keyed_values_py(raw)


def test_keyed_values_examples():
    for raw, expected in [(b"", 0), (b'"a":1', 1), (b'"a" :\n null', 0), (b'"a":nul', 1), (b'"a": n u l l x', 0),
                          (b'":":null', 1), (b'{"a":{"b":null,"c":[1]}}', 2), (b'":', 1), (b'"', 0)]:
        assert _scan.keyed_values(raw) == scan.keyed_values_py(raw) == expected, raw

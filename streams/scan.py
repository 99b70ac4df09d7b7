"""Byte scans of the ingest hot path: compiled (streams/_scan.c, built by `pip install`) when the
module is there, else their pure-Python twins below, chosen once at import. The two give the same
result on any bytes (tests/test_scan.py); only the speed differs (`COMPILED` says which runs).

The C file is its own source, never a compiled copy of this one, so editing this file cannot be
shadowed by a stale build.
"""
from __future__ import annotations

from typing import Any, Callable, Optional

_JSON_WHITESPACE = b" \t\n\r"


def keyed_values_py(raw: bytes) -> int:
    """Occurrences of `":` not followed by `null` in `raw` without JSON whitespace: the raw side
    of the duplicate-key proof (streams/ingest.py `_no_hidden_values`)."""
    compact = raw.translate(None, _JSON_WHITESPACE)
    return compact.count(b'":') - compact.count(b'":null')


def replace_once_py(raw: bytes, key_token: bytes, value_token: bytes, replacement: bytes) -> Optional[bytes]:
    """`raw` with the string of one field replaced: `key_token` (a key as JSON, quotes included)
    must occur exactly once, directly followed by `value_token` (`:` and the value's JSON
    string), and `raw` must hold no backslash (no escapes: every quote is a string's edge). The
    value (after the `:`) is replaced by `replacement`; None when any of that does not hold."""
    if b"\\" in raw or not key_token or not value_token:
        return None
    at = raw.find(key_token) + len(key_token)
    if at < len(key_token) or not raw.startswith(value_token, at) or raw.find(key_token, at) >= 0:
        return None
    return raw[:at + 1] + replacement + raw[at + len(value_token):]


try:
    from replaylens.streams._scan import keyed_values, present_keys, replace_once
    COMPILED = True
except ImportError:  # no compiler where it was installed: the same results, slower
    keyed_values, replace_once = keyed_values_py, replace_once_py
    # Keys holding a non-null value in a decoded event (struct fields and dict values at any
    # depth); its twin, which knows the event struct's layout, is streams/ingest.py `_struct_keys`.
    present_keys: Optional[Callable[[Any], int]] = None
    COMPILED = False

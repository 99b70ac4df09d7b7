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


try:
    from replaylens.streams._scan import keyed_values, present_keys
    COMPILED = True
except ImportError:  # no compiler where it was installed: the same results, slower
    keyed_values = keyed_values_py
    # Keys holding a non-null value in a decoded event (struct fields and dict values at any
    # depth); its twin, which knows the event struct's layout, is streams/ingest.py `_struct_keys`.
    present_keys: Optional[Callable[[Any], int]] = None
    COMPILED = False

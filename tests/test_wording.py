"""config/wording.py: one way to say counts and times."""
from __future__ import annotations

import pytest

from replaylens.config.wording import clock, human_duration, listing, plural, short_duration


@pytest.mark.parametrize("count,word,expected", [
    (1, "session", "1 session"), (2, "session", "2 sessions"), (0, "page", "0 pages"),
    (2, "mouse thrash", "2 mouse thrashes"), (1, "mouse thrash", "1 mouse thrash"), (3, "search", "3 searches"),
    (2, "retry", "2 retries"), (2, "box", "2 boxes"), (4, "more action", "4 more actions"),
])
def test_plural(count, word, expected):
    assert plural(count, word) == expected


def test_listing_says_how_many_were_left_out():
    assert listing(["a", "b"], 3) == "a, b"
    assert listing(list("abcdef"), 3) == "a, b, c and 3 more"


@pytest.mark.parametrize("ms,expected", [(450, "450 ms"), (1900, "1.9 s"), (45_000, "45 s"),
                                         (130_000, "2 min 10 s"), (120_000, "2 min")])
def test_short_duration(ms, expected):
    assert short_duration(ms) == expected


@pytest.mark.parametrize("ms,expected", [(400, "0 s"), (59_400, "59 s"), (61_000, "1 min 1 s"),
                                         (3_600_000, "1 h"), (3_780_000, "1 h 3 min")])
def test_human_duration(ms, expected):
    assert human_duration(ms) == expected


def test_clock_and_its_padded_form():
    assert clock(65_000) == "1:05" and clock(65_000, pad_minutes=True) == "01:05"
    assert clock(3_723_000) == "1:02:03" == clock(3_723_000, pad_minutes=True)
    assert clock(-5) == "0:00"

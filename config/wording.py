"""How every output says counts and times (pure; the ground floor, used by every layer).

One place for plurals and time formats, so a summary, a comparison and a prompt never say
the same thing two ways ("1 session", "2 mouse thrashes", "1 min 5 s", "1:05").
"""
from __future__ import annotations

from typing import Optional

# Plurals English does not form with a bare "s".
_IRREGULAR = {"thrash": "thrashes", "mouse thrash": "mouse thrashes", "search": "searches",
              "match": "matches", "retry": "retries", "entry": "entries", "category": "categories"}

MS_PER_S = 1000
S_PER_MIN = 60
S_PER_H = 3600


def plural_word(count: int, word: str, plural: Optional[str] = None) -> str:
    if count == 1:
        return word
    if plural:
        return plural
    if word in _IRREGULAR:
        return _IRREGULAR[word]
    last = word.rsplit(" ", 1)[-1]
    if last in _IRREGULAR:
        return word[: len(word) - len(last)] + _IRREGULAR[last]
    if word.endswith(("sh", "ch", "ss", "x")):
        return word + "es"
    return word + "s"


def plural(count: int, word: str, plural_form: Optional[str] = None) -> str:
    """'1 session', '3 sessions', '2 mouse thrashes'."""
    return f"{count} {plural_word(count, word, plural_form)}"


def listing(items: list[str], limit: int) -> str:
    """'a, b, c and 4 more' (the count of what was left out is always said)."""
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def short_duration(ms: float) -> str:
    """A measured time: '850 ms', '4.1 s', '12 s', '3 min 5 s' (web vitals, averages)."""
    if ms < MS_PER_S:
        return f"{ms:.0f} ms"
    seconds = ms / MS_PER_S
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < S_PER_MIN:
        return f"{seconds:.0f} s"
    return human_duration(ms)


def human_duration(ms: float) -> str:
    """A span of a visit, to the second: '45 s', '6 min 5 s', '2 h 3 min'."""
    seconds = max(0, int(round(ms / MS_PER_S)))
    if seconds < S_PER_MIN:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, S_PER_MIN)
    if minutes < 60:
        return f"{minutes} min {seconds} s" if seconds else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def clock(offset_ms: int, pad_minutes: bool = False) -> str:
    """m:ss (or h:mm:ss) into the session; mm:ss with `pad_minutes` (fixed-width tables)."""
    seconds = max(0, int(offset_ms)) // MS_PER_S
    hours, rest = divmod(seconds, S_PER_H)
    minutes, seconds = divmod(rest, S_PER_MIN)
    if hours:
        return f"{hours}:{minutes:02d}:{seconds:02d}"
    return f"{minutes:02d}:{seconds:02d}" if pad_minutes else f"{minutes}:{seconds:02d}"

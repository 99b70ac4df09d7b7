"""The validity gate's fact check: what an LLM answer states against what the session shows (pure).

Durations, page counts, error counts, paths and the outcome stated in the answer are compared with
the deterministic analysis; each contradiction is reported in words ("says 2.5 h, the session
lasted 6 min"). An answer with any is rejected (retried, then the built-in summary is used).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from replaylens.config.wording import human_duration

_UNIT_MS = {"h": 3_600_000, "hour": 3_600_000, "hr": 3_600_000, "min": 60_000, "minute": 60_000,
            "m": 60_000, "s": 1000, "sec": 1000, "second": 1000}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(hours?|hrs?|h|minutes?|mins?|m|seconds?|secs?|s)\b", re.I)
_PAGES = re.compile(r"\b(\d+)\s+(?:different\s+|distinct\s+|unique\s+)?pages?\b", re.I)
_ERRORS = re.compile(r"\b(\d+)\s+(?:\w+\s+)?errors?\b", re.I)
_NO_ERRORS = re.compile(r"\b(no|without any|without)\s+(errors?|issues|problems)\b", re.I)
_CONVERTED = re.compile(r"\b(completed (?:an |the |their )?(?:order|purchase|checkout)|placed (?:an |the )?order"
                        r"|successfully (?:signed up|purchased|checked out)|converted)\b", re.I)
_ABANDONED = re.compile(r"\b(abandoned|gave up|did not (?:complete|finish|buy|purchase|sign up)"
                        r"|never (?:completed|finished|bought|purchased))\b", re.I)
_PATH = re.compile(r"(?:(?<=\s)|(?<=`)|(?<=\())(/[A-Za-z0-9][\w\-/.]*)")
_MARKDOWN_LINK = re.compile(r"\]\([^)]*\)")
# A stated duration may round up: allow this much over the session's length.
DURATION_SLACK = 1.5
DURATION_SLACK_MS = 60_000


@dataclass(frozen=True)
class SessionFacts:
    duration_ms: int
    page_views: int
    distinct_pages: int
    error_issues: int
    error_events: int
    outcome: str
    paths: frozenset[str] = field(default_factory=frozenset)


def _unit_ms(unit: str) -> int:
    unit = unit.lower().rstrip("s") or "s"
    return _UNIT_MS.get(unit, _UNIT_MS.get(unit[:3], 1000))


def contradictions(text: str, facts: SessionFacts) -> list[str]:
    """Every statement of `text` that the session contradicts, in words."""
    text = _MARKDOWN_LINK.sub("]", text)  # link targets hold timestamps and ids, not statements
    found: list[str] = []
    limit = facts.duration_ms * DURATION_SLACK + DURATION_SLACK_MS
    for number, unit in _DURATION.findall(text):
        stated = float(number) * _unit_ms(unit)
        if stated > limit:
            found.append(f"says {number} {unit}, the session lasted {human_duration(facts.duration_ms)}")
            break
    for number in _PAGES.findall(text):
        if int(number) not in (facts.page_views, facts.distinct_pages):
            found.append(f"says {number} pages, the session viewed {facts.page_views} "
                         f"({facts.distinct_pages} different)")
            break
    for number in _ERRORS.findall(text):
        if int(number) not in (facts.error_issues, facts.error_events):
            found.append(f"says {number} errors, the session had {facts.error_events}")
            break
    if _NO_ERRORS.search(text) and facts.error_events:
        found.append(f"says there were no errors, the session had {facts.error_events}")
    if _CONVERTED.search(text) and facts.outcome != "converted" and not _ABANDONED.search(text):
        found.append(f"says the goal was reached, the outcome is {facts.outcome}")
    if facts.outcome == "converted" and _ABANDONED.search(text) and not _CONVERTED.search(text):
        found.append("says the user gave up, the session reached its goal")
    if facts.paths:
        for path in _PATH.findall(text):
            clean = path.rstrip(".,;:")
            if clean not in facts.paths and not any(p.startswith(clean) for p in facts.paths):
                found.append(f"names the page {clean}, which the session never visited")
                break
    return found

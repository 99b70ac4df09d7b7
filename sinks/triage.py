"""Which closed sessions are worth an LLM call (pure; the clock is injected).

Cost is part of the product: a mode picks the sessions (all, those with issues, those
lasting at least a minimum, or either), and a sliding one-minute window caps LLM calls.
Sessions that lose out get the built-in summary.
"""
from __future__ import annotations

import time
from collections import deque
from typing import Any, Callable, Literal, Optional

from replaylens.config.settings import setting_default
from replaylens.schemas.events import ERROR_TYPES, FRUSTRATION_TYPES

TriageMode = Literal["all", "issues", "min-duration", "issues-or-min-duration"]
TRIAGE_MODES = ("all", "issues", "min-duration", "issues-or-min-duration")
WINDOW_S = 60.0


def session_has_issues(session: dict[str, Any]) -> bool:
    """Frustration signals, errors, or a page slower than its baseline."""
    if session.get("signals"):
        return True
    issue_types = ERROR_TYPES | FRUSTRATION_TYPES
    if any(e.get("type") in issue_types for e in session.get("events") or ()):
        return True
    return any(c.get("worse") for c in session.get("comparisons") or ())


class Triage:
    def __init__(self, mode: Optional[TriageMode] = None, min_duration_ms: Optional[int] = None,
                 calls_per_minute: Optional[int] = None, clock: Callable[[], float] = time.monotonic) -> None:
        # Left out: the Settings default (one default for each, in Settings).
        mode = mode if mode is not None else setting_default("llm_triage")
        min_duration_ms = min_duration_ms if min_duration_ms is not None else setting_default("llm_triage_min_duration_ms")
        calls_per_minute = calls_per_minute if calls_per_minute is not None else setting_default("llm_calls_per_minute")
        if mode not in TRIAGE_MODES:
            raise ValueError(f"triage mode {mode!r} is not one of {', '.join(TRIAGE_MODES)}")
        if calls_per_minute < 0:
            raise ValueError("calls_per_minute must be 0 (no limit) or more")
        self.mode = mode
        self.min_duration_ms = min_duration_ms
        self.calls_per_minute = calls_per_minute
        self.clock = clock
        self._calls: deque[float] = deque()

    @classmethod
    def from_settings(cls, settings: Any, clock: Callable[[], float] = time.monotonic) -> "Triage":
        return cls(settings.llm_triage, settings.llm_triage_min_duration_ms,
                   settings.llm_calls_per_minute, clock)

    def selects(self, session: dict[str, Any], has_issues: bool) -> tuple[bool, str]:
        """Whether the mode picks this session, ignoring the budget."""
        long_enough = int(session.get("duration_ms") or 0) >= self.min_duration_ms
        if self.mode == "all":
            return True, "all sessions"
        if self.mode == "issues":
            return (True, "has issues") if has_issues else (False, "no issues")
        if self.mode == "min-duration":
            return (True, "long enough") if long_enough else (False, "too short")
        if has_issues:
            return True, "has issues"
        return (True, "long enough") if long_enough else (False, "no issues and too short")

    def should_use_llm(self, session: dict[str, Any], has_issues: bool) -> tuple[bool, str]:
        """Decide, and spend one call of the budget when the answer is yes."""
        chosen, reason = self.selects(session, has_issues)
        if not chosen:
            return False, reason
        if not self._take_budget():
            return False, f"over the budget of {self.calls_per_minute} LLM calls per minute"
        return True, reason

    def _take_budget(self) -> bool:
        if self.calls_per_minute == 0:  # 0 means no limit
            return True
        now = self.clock()
        while self._calls and now - self._calls[0] >= WINDOW_S:
            self._calls.popleft()
        if len(self._calls) >= self.calls_per_minute:
            return False
        self._calls.append(now)
        return True

"""Triage: which sessions get an LLM call, within a per-minute budget."""
from __future__ import annotations

import pytest

from replaylens.config.settings import Settings
from replaylens.sinks.triage import Triage, session_has_issues
from tests.llm_sessions import checkout_session, quiet_session


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


SHORT, LONG = {"duration_ms": 5_000}, {"duration_ms": 120_000}


@pytest.mark.parametrize("mode,session,has_issues,expected", [
    ("all", SHORT, False, True),
    ("issues", LONG, False, False),
    ("issues", SHORT, True, True),
    ("min-duration", SHORT, True, False),
    ("min-duration", LONG, False, True),
    ("issues-or-min-duration", SHORT, False, False),
    ("issues-or-min-duration", SHORT, True, True),
    ("issues-or-min-duration", LONG, False, True),
])
def test_modes(mode, session, has_issues, expected):
    use, reason = Triage(mode, min_duration_ms=60_000, calls_per_minute=0).should_use_llm(session, has_issues)
    assert use is expected and reason


def test_budget_is_a_sliding_minute():
    clock = Clock()
    triage = Triage("all", calls_per_minute=2, clock=clock)
    assert [triage.should_use_llm(LONG, False)[0] for _ in range(3)] == [True, True, False]
    assert "2 LLM calls per minute" in triage.should_use_llm(LONG, False)[1]
    clock.now += 30
    assert triage.should_use_llm(LONG, False)[0] is False
    clock.now += 30  # the first two calls are now a minute old
    assert [triage.should_use_llm(LONG, False)[0] for _ in range(3)] == [True, True, False]


def test_sessions_the_mode_skips_do_not_spend_budget():
    triage = Triage("issues", calls_per_minute=1, clock=Clock())
    assert triage.should_use_llm(LONG, False) == (False, "no issues")
    assert triage.should_use_llm(SHORT, True)[0] is True


def test_zero_calls_per_minute_means_no_limit():
    triage = Triage("all", calls_per_minute=0, clock=Clock())
    assert all(triage.should_use_llm(SHORT, False)[0] for _ in range(500))


def test_bad_mode_is_rejected_clearly():
    with pytest.raises(ValueError, match="triage mode 'some'"):
        Triage("some")  # type: ignore[arg-type]


def test_from_settings():
    triage = Triage.from_settings(Settings(llm_triage="issues", llm_calls_per_minute=5,
                                           llm_triage_min_duration_ms=1))
    assert (triage.mode, triage.calls_per_minute, triage.min_duration_ms) == ("issues", 5, 1)


def test_session_has_issues():
    assert session_has_issues(checkout_session())
    assert not session_has_issues(quiet_session())
    errors_only = quiet_session()
    errors_only["events"].append({"type": "console-error", "timestamp": 1, "error": {"message": "x"}})
    assert session_has_issues(errors_only)
    slow = quiet_session()
    slow["comparisons"] = [{"worse": True}]
    assert session_has_issues(slow)

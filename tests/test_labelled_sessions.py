"""Labelled sessions: what a person reads in the built-in summary of each behaviour.

Issue counts, severities, outcome and the words themselves (a summary is read, not parsed).
"""
from __future__ import annotations

import pytest

from replaylens.schemas.profiles import DEFAULT_PROFILE
from replaylens.schemas.summaries import Summary
from replaylens.sinks.builtin import BuiltinSummarizer
from tests import labelled_sessions as labelled
from tests.sessions_factory import at

SUMMARIZER = BuiltinSummarizer("{replay_base_url}/s/{session_id}?t={timestamp_ms}", "http://replay.test")


def summarize(session: dict, summarizer: BuiltinSummarizer = SUMMARIZER) -> Summary:
    return summarizer.summarize(session, DEFAULT_PROFILE, generated_at=0)


def test_a_failing_sign_up_is_one_blocking_incident_with_its_message_and_retries():
    summary = summarize(labelled.failing_signup())
    assert [(i.type, i.severity) for i in summary.potential_issues] == [("error", "high")]
    issue = summary.potential_issues[0]
    assert issue.description == ("Sign-up blocked: clicking “Create account” on /signup failed 4 times "
                                 "(API error: POST /api/signup returned 422 “email is invalid”); then 1 rage click")
    assert issue.message == "email is invalid" and issue.attempts == 4 and issue.blocking
    # each moment with its time-coded link: 4 clicks, 4 failures, the rage click after them
    assert [e.what for e in issue.evidence].count("clicked “Create account”") == 4
    assert issue.evidence[-1].what == "rage-clicked “Create account” 5 times"
    assert issue.evidence[-1].link == f"http://replay.test/s/signup-fail?t={at(92)}"
    outcome = summary.outcome
    assert (outcome.status, outcome.goal, outcome.failed_attempts, outcome.reason) == \
        ("abandoned", "sign-up", 4, "email is invalid")
    assert summary.key_insights[0] == "Came to sign up but gave up after 4 failed attempts (“email is invalid”)"
    assert "Outcome: sign-up abandoned" in summary.summary and "1 potential issue, 1 blocking." in summary.summary


def test_a_failed_payment_names_the_decline_and_folds_the_javascript_error_in():
    summary = summarize(labelled.failed_payment())
    assert [(i.type, i.severity, i.goal) for i in summary.potential_issues] == [("error", "high", "purchase")]
    issue = summary.potential_issues[0]
    assert issue.message == "Payment declined" and issue.attempts == 2
    assert issue.description.startswith("Purchase blocked: clicking “Pay now” on /checkout failed 2 times "
                                        "(API error: POST /api/payments returned 402 “Payment declined”)")
    assert summary.outcome.status == "abandoned" and summary.outcome.goal == "purchase"
    assert summary.outcome.evidence.endswith("but never completed an order: 2 attempts failed with “Payment declined”")
    assert summary.key_insights[0] == "Came to buy something but gave up after 2 failed attempts (“Payment declined”)"


def test_a_converted_session_with_a_harmless_console_error_does_not_cry_wolf():
    summary = summarize(labelled.converted_with_harmless_error())
    assert summary.outcome.status == "converted" and summary.outcome.goal == "purchase"
    assert [(i.type, i.severity, i.blocking) for i in summary.potential_issues] == [("error", "low", False)]
    assert summary.potential_issues[0].description.endswith("(not blocking: the user went on and completed an order)")
    assert summary.key_insights[0].startswith("Came to buy something and did")
    assert "0 blocking" not in summary.summary and ", 1 blocking" not in summary.summary
    quiet = BuiltinSummarizer(report_nonblocking=False)
    assert summarize(labelled.converted_with_harmless_error(), quiet).potential_issues == []


def test_a_reader_with_no_issues_reads_as_such():
    summary = summarize(labelled.reader())
    assert summary.potential_issues == [] and summary.outcome.status == "neutral"
    assert summary.key_insights[0] == "Browsed without a goal in sight: an article"
    assert "No friction detected" in summary.key_insights
    assert "No potential issues." in summary.summary and "- None detected." in summary.summary


@pytest.mark.parametrize("make", [labelled.failing_signup, labelled.failed_payment,
                                  labelled.converted_with_harmless_error, labelled.reader, labelled.with_secrets])
def test_counts_agree_across_sections_and_plurals_are_right(make):
    summary = summarize(make())
    views = len(summary.journey)
    page_word = "page" if views == 1 else "pages"
    assert f"Viewed {views} {page_word}" in summary.summary.split("\n")[0]
    assert any(i.startswith(f"Viewed {views} {page_word}") for i in summary.key_insights)
    issues = len(summary.potential_issues)
    if issues:
        assert f"{issues} potential issue{'s' if issues != 1 else ''}" in summary.summary
    for wrong in ("1 sessions", "1 pages", "1 times", "thrashs", "1 attempts", "1 issues"):
        assert wrong not in summary.summary, wrong


def test_the_journey_says_when_it_shortens():
    events = [labelled.nav(0, "/settings")] + [labelled.click(1 + n, f"Toggle {n}", f"button.t{n}") for n in range(20)]
    from tests.sessions_factory import make_session
    summary = summarize(make_session(events))
    assert summary.journey[0].actions[-1] == "and 15 more actions"
    assert len(summary.journey[0].actions) == 6

"""sinks/incidents.py: the signals of one failure grouped into one issue, with severity and rank."""
from __future__ import annotations

from replaylens.config.privacy import PrivacyPolicy
from replaylens.schemas.profiles import DEFAULT_PROFILE
from replaylens.schemas.summaries import PotentialIssue
from replaylens.sinks.incidents import group_errors, rank
from tests.labelled_sessions import api_error, click, nav
from tests.sessions_factory import at, make_session

POLICY = PrivacyPolicy()


def events_of(*events):
    return make_session(list(events))["events"]


def test_retries_of_the_same_failure_are_one_incident_with_each_attempt():
    events = events_of(nav(0, "/signup"), click(10, "Create account"), api_error(10.5, 422, "POST", "/api/signup"),
                       click(20, "Create account"), api_error(20.5, 422, "POST", "/api/signup"))
    [incident] = group_errors(events)
    assert incident.attempts == 2 and len(incident.triggers) == 2 and len(incident.errors) == 2


def test_a_javascript_error_set_off_by_the_same_click_joins_the_failed_request():
    events = events_of(nav(0, "/checkout"), click(10, "Pay"), api_error(11, 402, "POST", "/api/pay"),
                       {"timestamp": at(11.2), "type": "console-error", "error": {"message": "PaymentError"}})
    [incident] = group_errors(events)
    assert incident.main_error["type"] == "network-error" and len(incident.keys) == 2


def test_unrelated_errors_on_different_pages_stay_apart():
    events = events_of(nav(0, "/a"), {"timestamp": at(5), "type": "console-error", "error": {"message": "x"}},
                       nav(60, "/b"), click(70, "Save"), api_error(71, 500, "PUT", "/api/save"))
    assert len(group_errors(events)) == 2


def issue(severity, goal=None, blocking=False, attempts=1, ts=0) -> PotentialIssue:
    return PotentialIssue.model_construct(type="error", description=f"{severity} {goal}", timestamp=ts, link="l",
                                          severity=severity, goal=goal, blocking=blocking, attempts=attempts)


def test_rank_puts_blocking_failures_on_a_goal_first():
    ranked = rank([issue("low", ts=1), issue("medium", blocking=True, ts=2),
                   issue("high", "purchase", True, 1, ts=3), issue("high", "sign-up", True, 4, ts=4)])
    assert [(i.severity, i.goal) for i in ranked] == [("high", "sign-up"), ("high", "purchase"),
                                                      ("medium", None), ("low", None)]
    assert DEFAULT_PROFILE.id  # issues are built from the default profile's view elsewhere


def test_an_error_click_joins_the_error_it_set_off_on_the_next_page():
    from replaylens.sinks.incidents import attach_signals

    events = events_of(nav(0, "/product/1"), click(5, "Cart"), nav(5.5, "/cart"),
                       {"timestamp": at(6), "type": "console-error", "error": {"message": "analytics is not defined"}})
    incidents = group_errors(events)
    signal = {"type": "error-click", "timestamp": at(5), "url": "https://app.test/product/1", "selector": "button"}
    assert attach_signals(incidents, [signal]) == [] and incidents[0].signals == [signal]

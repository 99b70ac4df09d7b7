"""Group summaries: selection, friction counts, highlight links, the ≤ 25 sessions rule."""
from __future__ import annotations

import pytest
from pydantic import ValidationError

from replaylens.schemas.profiles import DEFAULT_PROFILE
from replaylens.sinks.builtin import BuiltinSummarizer
from replaylens.sinks.group import GroupFilter, normalize_url, summarize_group
from replaylens.config.privacy import hash_id
from tests.sessions_factory import at, make_session

SITE = "https://shop.test"
SALT = "test-salt"
SUMMARIZER = BuiltinSummarizer("{replay_base_url}/s/{session_id}?t={timestamp_ms}", "http://replay.test")


def checkout_failure(n: int, start_s: float) -> dict:
    """A session whose order request fails with a 500 on /checkout/<order id>."""
    return make_session([
        {"timestamp": at(start_s), "type": "navigate", "url": f"{SITE}/checkout/{1000 + n}",
         "user": {"id": f"user-{n}"}},
        {"timestamp": at(start_s + 5), "type": "network-error",
         "error": {"status": 500, "method": "POST", "request_url": f"{SITE}/api/orders"}},
    ], session_id=f"fail-{n}")


def clean(n: int, start_s: float) -> dict:
    return make_session([
        {"timestamp": at(start_s), "type": "navigate", "url": f"{SITE}/blog/{n}", "user": {"id": f"reader-{n}"}},
        {"timestamp": at(start_s + 30), "type": "scroll"},
    ], session_id=f"clean-{n}")


def test_normalize_url_drops_ids_and_query():
    assert normalize_url("https://Shop.test/checkout/1234?step=2#x") == "shop.test/checkout/:id"
    assert normalize_url("https://shop.test/") == "shop.test/"


def test_counts_friction_points_and_outcomes():
    sessions = [checkout_failure(n, n * 100) for n in range(4)] + [clean(n, 1000 + n) for n in range(3)]
    group = summarize_group(sessions, GroupFilter(), SUMMARIZER, SALT)
    assert group.session_count == 7
    assert group.outcomes == {"abandoned": 4, "neutral": 3}
    top = group.friction_points[0]
    assert (top.url, top.session_count, top.occurrences) == ("shop.test/checkout/:id", 4, 4)
    assert {p.issue_type for p in group.friction_points} == {"error"}  # the failure explains the abandonment
    assert top.severity == "high" and top.impact == 4 * 3
    assert top.message == "API error: POST /api/orders returned 500"
    assert len(top.examples) == 3 and all(link.startswith("http://replay.test/s/fail-") for link in top.examples)
    assert group.highlights.startswith("Across 7 sessions (4 abandoned, 3 neutral), what hurt most was [errors "
                                       "(API error: POST /api/orders returned 500) on /checkout/:id]")
    assert "(4 of 7 sessions, high severity)" in group.highlights
    assert "**Common friction points**" in group.summary and "Journey" not in group.summary


def test_issue_list_fields_as_heap():
    group = summarize_group([checkout_failure(1, 0)], GroupFilter(), SUMMARIZER, SALT)
    error = next(i for i in group.issues if i.type == "error")
    assert error.text == "Purchase blocked: API error: POST /api/orders returned 500 on /checkout/1001"
    assert error.pageURL == f"{SITE}/checkout/1001"
    assert error.userIdHashed == hash_id("user-1", SALT) != "user-1"
    assert (error.sessionId, error.eventId) == ("fail-1", "e2")
    assert error.link == f"http://replay.test/s/fail-1?t={at(5)}"


def test_issue_list_only_for_25_sessions_or_fewer():
    sessions = [checkout_failure(n, n * 100) for n in range(26)]
    assert summarize_group(sessions[:25], GroupFilter(), SUMMARIZER, SALT).issues is not None
    big = summarize_group(sessions, GroupFilter(), SUMMARIZER, SALT)
    assert big.session_count == 26 and big.issues is None
    assert "**Potential issues**" not in big.summary


def test_filters_select_sessions():
    sessions = [checkout_failure(n, n * 100) for n in range(3)] + [clean(n, 1000 + n) for n in range(2)]
    by_url = summarize_group(sessions, GroupFilter(url="/blog/"), SUMMARIZER, SALT)
    assert by_url.session_count == 2 and by_url.friction_points == []
    assert by_url.highlights == "Across 2 sessions (2 neutral), no potential issues were detected."
    assert summarize_group(sessions, GroupFilter(url="shop.test/checkout/:id"), SUMMARIZER, SALT).session_count == 3
    assert summarize_group(sessions, GroupFilter(user_id="user-2"), SUMMARIZER, SALT).session_count == 1
    assert summarize_group(sessions, GroupFilter(issue_type="error"), SUMMARIZER, SALT).session_count == 3
    timed = summarize_group(sessions, GroupFilter(start_ms=at(150), end_ms=at(250)), SUMMARIZER, SALT)
    assert timed.session_count == 1 and timed.started_at == at(200)
    newest = summarize_group(sessions, GroupFilter(limit=2), SUMMARIZER, SALT)
    assert newest.started_at == at(1000)  # the most recent two


def test_precomputed_summary_issues_are_used():
    session = clean(1, 0)
    summary = SUMMARIZER.summarize(checkout_failure(9, 0), DEFAULT_PROFILE, generated_at=0)
    group = summarize_group([{**session, "summary": summary.model_dump()}], GroupFilter(), SUMMARIZER, SALT)
    assert {i.type for i in group.issues} == {"error"}


def test_limit_is_at_most_100():
    with pytest.raises(ValidationError):
        GroupFilter(limit=101)


def test_empty_group():
    group = summarize_group([], GroupFilter(), SUMMARIZER, SALT)
    assert group.session_count == 0 and group.issues == []
    assert group.highlights == "No sessions match this filter."


def rage_on(host: str, path: str, n: int, start_s: float) -> dict:
    return make_session([
        {"timestamp": at(start_s), "type": "navigate", "url": f"https://{host}{path}"},
        {"timestamp": at(start_s + 2), "type": "rage-click", "target": {"selector": "a.logo", "text": "Logo"}},
    ], session_id=f"rage-{host}-{n}")


def test_ranked_by_sessions_times_severity_and_hosts_kept_when_the_group_spans_them():
    # 4 sessions with a rage click (medium) on two hosts' "/", 2 with a blocking checkout failure (high)
    sessions = [rage_on("a.test", "/", n, n * 10) for n in range(2)]
    sessions += [rage_on("b.test", "/", n, 100 + n * 10) for n in range(2)]
    sessions += [checkout_failure(n, 500 + n * 100) for n in range(2)]
    group = summarize_group(sessions, GroupFilter(), SUMMARIZER, SALT)
    top = group.friction_points[0]
    assert (top.issue_type, top.session_count, top.impact) == ("error", 2, 6)  # 2 × high before 2 × medium
    assert [(p.url, p.session_count, p.impact) for p in group.friction_points[1:]] == [
        ("a.test/", 2, 4), ("b.test/", 2, 4)]
    assert "rage clicks on a.test/" in group.summary and "rage clicks on b.test/" in group.summary


def test_headline_stays_within_the_url_filter():
    sessions = []
    for n in range(3):
        session = checkout_failure(n, n * 100)
        events = session["events"]
        events.insert(0, {"timestamp": at(n * 100 - 50), "type": "navigate", "url": f"{SITE}/product/{n}",
                          "event_id": f"p{n}", "session_id": f"fail-{n}"})
        for k in range(3):
            events.insert(1 + k, {"timestamp": at(n * 100 - 40 + k * 5), "type": "rage-click", "url": f"{SITE}/product/{n}",
                                  "event_id": f"r{n}{k}", "session_id": f"fail-{n}",
                                  "target": {"selector": "button#zoom"}})
        sessions.append(make_session(events, session_id=f"fail-{n}"))
    group = summarize_group(sessions, GroupFilter(url="/checkout"), SUMMARIZER, SALT)
    assert "what hurt most was [errors (API error: POST /api/orders returned 500) on /checkout/:id]" in group.highlights


def test_a_users_sessions_are_found_by_email_through_the_keyed_hash():
    from replaylens.config.privacy import PrivacyPolicy

    policy = PrivacyPolicy(identity_secret="k")
    summarizer = BuiltinSummarizer(policy=policy)
    sessions = [clean(n, n * 100) for n in range(3)]
    sessions[1]["context"]["user"]["email"] = policy.identity_key("Ann@Example.com")  # as ingest stores it
    group = summarize_group(sessions, GroupFilter(user_email="ann@example.com"), summarizer, SALT)
    assert group.session_count == 1 and "ann@example.com" not in group.model_dump_json().lower()

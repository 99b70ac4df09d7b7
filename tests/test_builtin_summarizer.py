"""The built-in summarizer: issues at the right moments, no invented issues, JSON answers."""
from __future__ import annotations

import json

import jsonschema
import pytest

from replaylens.schemas.profiles import DEFAULT_PROFILE, SummaryProfile
from replaylens.config.goals import Goal
from replaylens.schemas.summaries import Summary
from replaylens.sinks.builtin import BuiltinSummarizer, idempotency_key
from replaylens.sinks.profile_view import build_view
from tests.sessions_factory import at, make_session

TEMPLATE = "{replay_base_url}/sessions/{session_id}?t={timestamp_ms}"
BASE_URL = "http://replay.test"
DEVICE = {"type": "desktop", "os": "macOS", "browser": "Chrome"}
SITE = "https://shop.test"


def summarizer() -> BuiltinSummarizer:
    return BuiltinSummarizer(TEMPLATE, BASE_URL)


def summarize(session: dict, profile: SummaryProfile = DEFAULT_PROFILE) -> Summary:
    return summarizer().summarize(session, profile, generated_at=at(1000))


def nav(seconds: float, path: str, **extra) -> dict:
    return {"timestamp": at(seconds), "type": "navigate", "url": SITE + path, **extra}


def click(seconds: float, text, selector: str = "button") -> dict:
    target = {"selector": selector, "text": text} if text else {"selector": selector}
    return {"timestamp": at(seconds), "type": "click", "target": target}


def issue_moments(summary: Summary) -> list[tuple[str, int]]:
    return [(i.type, i.timestamp) for i in summary.potential_issues]


def link_at(seconds: float, session_id: str = "user-1%3Asess-1") -> str:
    return f"{BASE_URL}/sessions/{session_id}?t={at(seconds)}"


def clean_browse() -> dict:
    return make_session([
        nav(0, "/", user={"id": "u1", "email": "ann@example.com"}, device=DEVICE),
        {"timestamp": at(1), "type": "web-vitals", "metrics": {"lcp": 1800, "inp": 90, "cls": 0.02}},
        {"timestamp": at(3), "type": "scroll"},
        click(8, "Shoes", "a.nav"),
        nav(9, "/search?q=trail+shoes"),
        click(15, "Trail runner", "a.product"),
        nav(16, "/product/trail-runner"),
        {"timestamp": at(17), "type": "custom", "name": "Product Viewed", "properties": {"name": "Trail Runner"}},
        {"timestamp": at(30), "type": "scroll"},
        click(45, "Reviews", "a.tab"),
        nav(50, "/about"),
    ])


def test_clean_browse_has_no_issues():
    summary = summarize(clean_browse())
    assert summary.potential_issues == []
    assert summary.outcome.status == "neutral"
    assert "- None detected." in summary.summary
    assert summary.status == "READY" and summary.summarizer == "builtin" and summary.model is None


def test_clean_browse_insights_and_journey():
    summary = summarize(clean_browse())
    text = "\n".join(summary.key_insights)
    assert "Viewed 4 pages" in text
    assert text.startswith("Browsed without a goal in sight: the home page, search results, a product page")
    assert "In order: landed on the home page, clicked “Shoes”, went to search results" in text
    assert "Searched for “trail shoes”" in text
    assert "“Trail Runner”" in text
    assert [step.url for step in summary.journey] == [
        SITE + "/", SITE + "/search?q=trail+shoes", SITE + "/product/trail-runner", SITE + "/about"]
    assert summary.journey[0].time_on_page_ms == 9000
    assert summary.journey[0].link == link_at(0)
    assert "clicked “Shoes”" in summary.journey[0].actions
    assert summary.summary.startswith("**Overview:** Viewed 4 pages in 50 s on desktop (Chrome on macOS)")


def test_rage_click_from_signal_at_its_time_and_not_double_counted():
    events = [nav(0, "/cart"), click(20, "Apply coupon"), click(20.2, "Apply coupon"),
              click(20.4, "Apply coupon"),
              {"timestamp": at(20.5), "type": "rage-click", "target": {"selector": "button", "text": "Apply coupon"}}]
    signals = [{"type": "rage-click", "timestamp": at(20), "event_id": "e2", "url": SITE + "/cart",
                "selector": "button", "text": "Apply coupon", "count": 3, "derived": True}]
    summary = summarize(make_session(events, signals=signals))
    rage = [i for i in summary.potential_issues if i.type == "rage-click"]
    assert len(rage) == 1  # the source event and the derived signal are one moment
    assert rage[0].timestamp == at(20.5) and rage[0].event_id == "e5"
    assert rage[0].link == link_at(20.5)
    assert "“Apply coupon” 3 times" in rage[0].description


def test_dead_click_from_derived_signal():
    events = [nav(0, "/pricing"), click(12, "Compare plans", "div.card")]
    signals = [{"type": "dead-click", "timestamp": at(12), "event_id": "e2", "url": SITE + "/pricing",
                "selector": "div.card", "text": "Compare plans", "derived": True}]
    summary = summarize(make_session(events, signals=signals))
    assert issue_moments(summary) == [("dead-click", at(12))]
    assert summary.potential_issues[0].description == \
        "Dead click: clicked “Compare plans” on /pricing and nothing happened"
    assert f"]({link_at(12)}) at 0:12" in summary.summary


def test_javascript_error_grouped_with_count():
    events = [nav(0, "/account")] + [
        {"timestamp": at(5 + n), "type": "console-error", "error": {"message": "TypeError: a is undefined"}}
        for n in range(3)]
    summary = summarize(make_session(events))
    assert issue_moments(summary) == [("error", at(5))]
    assert summary.potential_issues[0].description == \
        "JavaScript error: “TypeError: a is undefined” on /account (3 times)"
    assert summary.potential_issues[0].event_id == "e2"


def test_api_500_on_checkout_is_one_blocking_incident():
    events = [
        nav(0, "/checkout"),
        {"timestamp": at(10), "type": "input-change", "target": {"selector": "#address"}, "value": "[masked]"},
        click(30, "Place order", "button[type=submit]"),
        {"timestamp": at(31), "type": "network-error",
         "error": {"status": 500, "method": "post", "request_url": SITE + "/api/orders"}},
    ]
    summary = summarize(make_session(events))
    assert issue_moments(summary) == [("error", at(30))]  # the click, the failure: one incident
    issue = summary.potential_issues[0]
    assert issue.description == ("Purchase blocked: clicking “Place order” on /checkout failed "
                                 "(API error: POST /api/orders returned 500)")
    assert issue.severity == "high" and issue.blocking and issue.goal == "purchase"
    assert [(e.what, e.link) for e in issue.evidence] == [
        ("clicked “Place order”", link_at(30)), ("API error: POST /api/orders returned 500", link_at(31))]
    assert issue.link == link_at(30)
    assert summary.outcome.status == "abandoned" and summary.outcome.goal == "purchase"
    assert summary.outcome.failed_attempts == 1


def test_slow_page_uses_good_thresholds():
    events = [
        nav(0, "/"), {"timestamp": at(2), "type": "web-vitals", "metrics": {"lcp": 2500, "inp": 200, "cls": 0.1}},
        nav(10, "/product/9"),
        {"timestamp": at(14), "type": "web-vitals", "metrics": {"lcp": 4100, "inp": 150}},
        {"timestamp": at(20), "type": "web-vitals", "metrics": {"inp": 350, "cls": 0.25}},
    ]
    summary = summarize(make_session(events))
    assert issue_moments(summary) == [("slow-page", at(14))]  # exactly-at-threshold is still good
    assert summary.potential_issues[0].severity == "low"
    assert summary.potential_issues[0].description == (
        "Slow page /product/9: LCP 4.1 s (good ≤ 2.5 s), INP 350 ms (good ≤ 200 ms), CLS 0.25 (good ≤ 0.1)")


def test_cart_abandonment_and_conversion():
    added = {"timestamp": at(20), "type": "custom", "name": "Added to Cart", "properties": {"name": "Red Shoes"}}
    abandoned = summarize(make_session([nav(0, "/product/red"), added, nav(40, "/blog")]))
    assert issue_moments(abandoned) == [("abandonment", at(20))]
    assert abandoned.potential_issues[0].description == \
        "Abandoned purchase: added “Red Shoes” to the cart at 0:20 but never completed an order"
    assert abandoned.outcome.status == "abandoned" and abandoned.outcome.goal == "purchase"

    converted = summarize(make_session([
        nav(0, "/product/red"), added, nav(30, "/checkout"),
        {"timestamp": at(60), "type": "custom", "name": "Order Completed"}]))
    assert converted.potential_issues == []
    assert converted.outcome.status == "converted"
    assert converted.outcome.evidence == "“Order Completed” at 1:00"


def test_custom_converted_event_names():
    session = make_session([nav(0, "/checkout"), {"timestamp": at(9), "type": "custom", "name": "Subscribed"}])
    assert summarize(session).outcome.status == "abandoned"
    goals = [Goal(name="subscription", events=["Subscribed"], start_url_patterns=["checkout"],
                  started_by_visit=True, reached_words="subscribed")]
    custom = BuiltinSummarizer(TEMPLATE, BASE_URL, goals=goals)
    outcome = custom.summarize(session, DEFAULT_PROFILE, generated_at=0).outcome
    assert (outcome.status, outcome.goal, outcome.evidence) == ("converted", "subscription", "“Subscribed” at 0:09")


def test_form_trouble_repeated_edits_of_one_field():
    events = [nav(0, "/signup")]
    for n in range(4):  # four separate returns to the same field, other fields in between
        events.append({"timestamp": at(10 + 10 * n), "type": "input-change",
                       "target": {"selector": "#password"}, "value": "[masked]"})
        events.append({"timestamp": at(15 + 10 * n), "type": "input-change",
                       "target": {"selector": f"#field{n}"}, "value": "[masked]"})
    summary = summarize(make_session(events))
    trouble = [i for i in summary.potential_issues if i.type == "form-trouble"]
    assert [(i.timestamp, i.event_id) for i in trouble] == [(at(10), "e2")]
    assert "“password” 4 separate times" in trouble[0].description
    assert trouble[0].severity == "medium" and trouble[0].goal == "sign-up"


def test_typing_burst_is_one_edit():
    events = [nav(0, "/signup")] + [
        {"timestamp": at(10) + 150 * n, "type": "input-change", "target": {"selector": "#name"}, "value": "[masked]"}
        for n in range(30)]
    issues = summarize(make_session(events)).potential_issues
    assert [i.type for i in issues] == ["abandonment"]  # typed into the sign-up form and left


def test_form_trouble_input_followed_by_error():
    events = [nav(0, "/signup"),
              {"timestamp": at(10), "type": "input-change", "target": {"selector": "#zip"}, "value": "[masked]"},
              {"timestamp": at(11), "type": "console-error", "error": {"message": "Invalid zip"}}]
    summary = summarize(make_session(events))
    assert issue_moments(summary) == [("error", at(10))]
    assert summary.potential_issues[0].description == \
        "Sign-up blocked: editing “zip” on /signup failed (JavaScript error: “Invalid zip”)"
    assert summary.potential_issues[0].message == "Invalid zip"


def test_masking_of_emails_and_cards_in_text():
    events = [nav(0, "/account", user={"id": "u9", "email": "jane.doe@example.com"}),
              click(3, "Email jane.doe@example.com"),
              {"timestamp": at(5), "type": "console-error",
               "error": {"message": "card 4111 1111 1111 1111 declined for jane.doe@example.com"}}]
    summary = summarize(make_session(events))
    dumped = summary.model_dump_json()
    assert "jane.doe@example.com" not in dumped
    assert "4111 1111 1111 1111" not in dumped
    assert summary.potential_issues[0].description == \
        "Clicking “Email [email]” on /account failed (JavaScript error: “card [card] declined for [email]”)"
    assert summary.potential_issues[0].message == "card [card] declined for [email]"
    assert r"card \[card\] declined for \[email\]" in summary.summary  # escaped inside link text
    assert "clicked “Email [email]”" in summary.summary
    assert summary.user == {"id": "u9", "email": "j***@example.com"}


def test_user_is_none_when_context_excludes_it():
    session = make_session([nav(0, "/", user={"id": "u9", "email": "x@y.com"})])
    summary = summarize(session, SummaryProfile(id="anon", context={"exclude": ["user"]}))
    assert summary.user is None


def test_summary_honours_profile_slice():
    events = [nav(0, "/"), {"timestamp": at(5), "type": "console-error", "error": {"message": "early"}},
              nav(10, "/pricing"), click(20, "Plans")]
    last_two = SummaryProfile(id="tail", slice={"mode": "LAST", "event_limit": 2})
    summary = summarize(make_session(events), last_two)
    assert summary.potential_issues == []
    assert [step.url for step in summary.journey] == [SITE + "/pricing"]
    assert "covers 2 of 4 events" in summary.summary


def test_comparisons_are_rendered():
    comparison = {"url": "shop.test/checkout", "metric": "lcp", "session_value": 4100, "baseline_value": 2100,
                  "baseline": "p75", "sample_size": 120, "worse": True,
                  "text": "LCP on /checkout was 4.1 s, slower than the usual 2.1 s (p75 of 120 sessions)"}
    summary = summarize(make_session([nav(0, "/checkout")], comparisons=[comparison]))
    assert "**Compared with the average experience**" in summary.summary
    assert comparison["text"] in summary.summary
    assert summary.comparisons[0].metric == "lcp"


def test_idempotency_key_stable_and_profile_sensitive():
    session = clean_browse()
    first = summarize(session)
    again = summarizer().summarize(json.loads(json.dumps(session)), DEFAULT_PROFILE, generated_at=5)
    assert first.idempotency_key == again.idempotency_key
    assert len(first.idempotency_key) == 32
    edited = DEFAULT_PROFILE.model_copy(update={"description": "changed"})
    assert idempotency_key(session["window_id"], edited) != first.idempotency_key
    other_window = summarize(make_session(clean_browse()["events"], window_id="other@1"))
    assert other_window.idempotency_key != first.idempotency_key


def test_analyze_is_reusable_on_a_view():
    session = make_session([nav(0, "/cart")])
    analysis = summarizer().analyze(build_view(session, DEFAULT_PROFILE))
    assert analysis.outcome.status == "abandoned"
    assert [i.type for i in analysis.potential_issues] == ["abandonment"]


# ---------------------------------------------------------------- output_schema answers

FULLSTORY_SCHEMA = {
    "type": "object",
    "properties": {
        "primary_goal": {"type": "string"},
        "issues_encountered": {"type": "array", "items": {"type": "string"}},
        "final_action": {"type": "string"},
        "reason_for_termination_suggestion": {"type": "string"},
        "help_pages_visited": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["primary_goal", "issues_encountered", "final_action",
                 "reason_for_termination_suggestion", "help_pages_visited"],
    "additionalProperties": False,
}


def troubled_session() -> dict:
    return make_session([
        nav(0, "/settings/billing", user={"id": "u5"}, device=DEVICE),
        {"timestamp": at(10), "type": "input-change", "target": {"selector": "#card"}, "value": "[masked]"},
        click(20, "Submit", "button[type=submit]"),
        {"timestamp": at(21), "type": "network-error",
         "error": {"status": 422, "method": "PUT", "request_url": SITE + "/api/payment"}},
        nav(40, "/help/payment-errors"),
        nav(70, "/dashboard"),
    ])


def answer(schema, session=None) -> dict:
    profile = SummaryProfile(id="json", llm={"output_schema": schema})
    summary = summarize(session or troubled_session(), profile)
    assert summary.status == "READY", summary.error
    data = json.loads(summary.summary)
    jsonschema.validate(data, profile.llm.output_schema)
    return data


def test_fullstory_schema_answer():
    data = answer(FULLSTORY_SCHEMA)
    assert data["help_pages_visited"] == ["/help/payment-errors"]
    assert any("PUT /api/payment returned 422" in issue for issue in data["issues_encountered"])
    assert data["final_action"].startswith("Left from /dashboard")
    assert data["primary_goal"] and data["reason_for_termination_suggestion"]


def test_schema_given_as_json_string():
    data = answer(json.dumps(FULLSTORY_SCHEMA))
    assert set(data) == set(FULLSTORY_SCHEMA["properties"])


def test_schema_with_objects_enums_and_unknown_fields():
    schema = {
        "type": "object",
        "required": ["overview", "outcome", "converted", "issue_count", "issues", "mystery", "score", "meta"],
        "properties": {
            "overview": {"type": "string", "maxLength": 80},
            "outcome": {"type": "string", "enum": ["converted", "abandoned", "neutral"]},
            "converted": {"type": "boolean"},
            "issue_count": {"type": "integer", "minimum": 0},
            "issues": {"type": "array", "items": {
                "type": "object", "required": ["text", "severity", "when"],
                "properties": {"text": {"type": "string"},
                               "severity": {"type": "string", "enum": ["low", "medium", "high"]},
                               "when": {"type": "integer"}, "page": {"type": "string"}}}},
            "mystery": {"type": "string", "enum": ["alpha", "beta"]},
            "score": {"type": ["number", "null"]},
            "meta": {"type": "object", "required": ["device"], "properties": {"device": {"type": "string"}}},
        },
    }
    data = answer(schema)
    assert data["outcome"] == "neutral" and data["converted"] is False
    assert data["issue_count"] == len(data["issues"]) == 1  # the click and its 422: one incident
    api = data["issues"][0]
    assert "API error: PUT /api/payment returned 422" in api["text"]
    assert api["when"] == at(20) and api["severity"] == "medium" and api["page"] == SITE + "/settings/billing"
    assert data["mystery"] == "alpha"  # nothing matches: first enum value
    assert data["meta"]["device"] == "desktop (Chrome on macOS)"
    assert len(data["overview"]) <= 80


def test_schema_with_refs_and_any_of():
    schema = {
        "$defs": {"step": {"type": "object", "properties": {"url": {"type": "string"},
                                                            "actions": {"type": "array", "items": {"type": "string"}}},
                           "required": ["url"]}},
        "type": "object",
        "properties": {"journey": {"type": "array", "items": {"$ref": "#/$defs/step"}, "maxItems": 2},
                       "user_id": {"anyOf": [{"type": "string"}, {"type": "null"}]},
                       "insights": {"type": "array", "items": {"type": "string"}, "minItems": 1}},
        "required": ["journey", "user_id", "insights"],
    }
    data = answer(schema)
    assert data["user_id"] == "u5"
    assert [s["url"] for s in data["journey"]] == [SITE + "/settings/billing", SITE + "/help/payment-errors"]
    assert data["insights"]


def test_unsatisfiable_schema_fails_clearly():
    schema = {"type": "object", "required": ["x"], "properties": {"x": {"type": "string", "pattern": "^\\d{99}$"}}}
    profile = SummaryProfile(id="bad", llm={"output_schema": schema})
    summary = summarize(troubled_session(), profile)
    assert summary.status == "FAILED"
    assert "output_schema" in summary.error and "x" in summary.error


@pytest.mark.parametrize("session_factory", [clean_browse, troubled_session])
def test_converted_boolean_schema_on_any_session(session_factory):
    data = answer({"type": "object", "properties": {"converted": {"type": "boolean"},
                                                    "pages_visited": {"type": "integer"}},
                   "required": ["converted", "pages_visited"]}, session_factory())
    assert data["converted"] is False and data["pages_visited"] >= 3


def test_derived_dead_click_on_a_form_field_is_not_an_issue():
    events = [nav(0, "/"), click(4, None, "input#search")]
    signals = [{"type": "dead-click", "timestamp": at(4), "event_id": "e2", "selector": "input#search",
                "derived": True}]
    assert summarize(make_session(events, signals=signals)).potential_issues == []


def test_poor_vitals_thresholds_are_configurable():
    from replaylens.sinks.incidents import POOR_VITALS

    events = [nav(0, "/a"), {"timestamp": at(1), "type": "web-vitals", "metrics": {"lcp": 3900, "inp": 300}},
              nav(5, "/b"), {"timestamp": at(6), "type": "web-vitals", "metrics": {"lcp": 4200}}]
    lenient = BuiltinSummarizer(TEMPLATE, BASE_URL, vitals_thresholds=POOR_VITALS)
    issues = lenient.summarize(make_session(events), DEFAULT_PROFILE, generated_at=0).potential_issues
    assert [(i.type, i.timestamp) for i in issues] == [("slow-page", at(6))]
    assert issues[0].description == "Slow page /b: LCP 4.2 s (limit ≤ 4.0 s)"
    assert len(summarize(make_session(events)).potential_issues) == 2  # good thresholds by default


def test_product_named_by_the_link_clicked_before_an_id_url():
    events = [nav(0, "/search?q=fleece"), click(5, "Summit Fleece", "a.product"), nav(6, "/product/217")]
    assert "Viewed 1 product: “Summit Fleece”" in summarize(make_session(events)).key_insights


def comparison_on(url: str, metric: str = "lcp", worse: bool = True) -> dict:
    """A comparison as the closing stage writes it: its text from figures and the URL's path."""
    from replaylens.aggregates.urls import display_path
    return {"url": url, "metric": metric, "session_value": 4100.0, "baseline_value": 2100.0, "baseline": "p75",
            "sample_size": 120, "worse": worse, "text": f"LCP 4.1 s vs p75 2.1 s on {display_path(url)}"}


def test_comparison_texts_are_masked_alike_in_the_summary_and_its_markdown():
    clean = comparison_on("https://shop.test/checkout")
    email = comparison_on("https://shop.test/u/alice@example.com/orders")
    card = comparison_on("https://shop.test/pay/4111 1111 1111 1111", worse=False)
    # A text that does not show its page was not written by the closing stage: masked whole
    not_written_here = {**clean, "url": "https://shop.test/other", "text": "Call 555-123-4567 on another page"}
    summary = summarize(make_session([nav(0, "/checkout")], comparisons=[clean, email, card, not_written_here]))
    texts = [c.text for c in summary.comparisons]
    for output in [summary.summary] + texts:  # (the url field is the closing stage's normalized URL)
        assert "alice@example.com" not in output and "4111 1111 1111 1111" not in output
        assert "555-123-4567" not in output
    assert texts[0] == clean["text"]  # nothing to mask: as written
    policy = summarizer().policy
    assert texts == [policy.text(c["text"]) for c in (clean, email, card, not_written_here)]
    assert texts[1] != email["text"] and texts[2] != card["text"] and texts[3] != not_written_here["text"]
    for text in texts:
        assert f"- {text}" in summary.summary


def test_a_comparison_not_of_the_contract_still_fails_validation():
    from pydantic import ValidationError
    bad = {**comparison_on("https://shop.test/checkout"), "text": 5}
    with pytest.raises(ValidationError):
        summarize(make_session([nav(0, "/checkout")], comparisons=[bad]))

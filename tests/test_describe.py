"""sinks/describe.py: labels for pages, elements, fields and errors, masked by the policy given."""
from __future__ import annotations

from replaylens.config.privacy import PrivacyPolicy
from replaylens.sinks.describe import (describe_error, error_message, field_label, page_label, request_label,
                                       target_label)

STRICT = PrivacyPolicy()
EMAILS_PASS = PrivacyPolicy(unmask_emails=True)


def test_page_label_is_the_masked_path_and_query():
    assert page_label("https://s.test/search?q=shoes&token=abc#top", STRICT) == "/search?q=shoes&token=[masked]"
    assert page_label("https://s.test", STRICT) == "/"
    assert page_label(None, STRICT) == "an unknown page"


def test_every_label_obeys_the_policy_it_is_given():
    click = {"target": {"selector": "a", "text": "Mail ann@example.com"}}
    assert target_label(click, STRICT) == "“Mail [email]”"
    assert target_label(click, EMAILS_PASS) == "“Mail ann@example.com”"


def test_target_label_falls_back_to_the_selector_and_never_shows_a_masked_value():
    assert target_label({"target": {"selector": "button#buy", "text": "[masked]"}}, STRICT) == "“button#buy”"
    assert target_label({}, STRICT) == "an element"


def test_field_label_in_plain_words():
    assert field_label({"target": {"selector": "input#card-number"}}, STRICT) == "card number"
    assert field_label({"target": {"selector": "input[name=first_name]"}}, STRICT) == "first name"


def test_errors_in_a_sentence_with_their_own_message():
    api = {"type": "network-error", "url": "https://s.test/pay",
           "error": {"status": 402, "method": "post", "request_url": "https://s.test/api/pay?card=4111111111111111",
                     "message": "Payment declined"}}
    assert request_label(api, STRICT) == "POST /api/pay?card=[masked]"
    assert describe_error(api, STRICT) == "API error: POST /api/pay?card=[masked] returned 402 “Payment declined”"
    js = {"type": "console-error", "error": {"message": "TypeError for bob@example.com"}}
    assert describe_error(js, STRICT) == "JavaScript error: “TypeError for [email]”"
    assert error_message({"error": {}}, STRICT) is None
    assert describe_error({"type": "network-error", "error": {}}, STRICT) == \
        "API error: a request failed without a response"

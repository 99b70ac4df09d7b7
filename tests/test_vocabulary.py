"""sinks/vocabulary.py: what events mean (searches, products, submits, kinds of page)."""
from __future__ import annotations

from replaylens.config.privacy import PrivacyPolicy
from replaylens.sinks.vocabulary import (is_search, is_submit_click, page_type, product_viewed, product_views,
                                         search_term)

POLICY = PrivacyPolicy()


def test_search_terms_from_urls_and_custom_events_masked():
    assert search_term({"type": "navigate", "url": "https://s.test/search?q=trail+shoes"}, POLICY) == "trail shoes"
    assert search_term({"type": "custom", "name": "Search", "properties": {"query": "a@b.co"}}, POLICY) == "[email]"
    assert is_search({"type": "input-change", "target": {"selector": "input#search"}}, POLICY)
    assert not is_search({"type": "input-change", "target": {"selector": "input#email"}}, POLICY)


def test_products_by_slug_or_named_by_the_link_clicked_before_an_id():
    assert product_viewed({"type": "navigate", "url": "https://s.test/product/red-shoes"}, POLICY) == "red shoes"
    events = [{"type": "click", "timestamp": 0, "target": {"text": "Summit Fleece"}},
              {"type": "navigate", "timestamp": 500, "url": "https://s.test/product/217"}]
    assert product_views(events, POLICY) == ["Summit Fleece"]


def test_submit_clicks():
    assert is_submit_click({"type": "click", "target": {"text": "Create account"}})
    assert is_submit_click({"type": "rage-click", "target": {"selector": "button#pay", "text": "Pay"}})
    assert not is_submit_click({"type": "click", "target": {"text": "Reviews"}})
    assert not is_submit_click({"type": "input-change", "target": {"text": "Submit"}})


def test_kinds_of_page():
    kinds = {path: page_type("https://s.test" + path) for path in
             ("/", "/search?q=x", "/product/9", "/cart", "/checkout", "/signup", "/login", "/help/returns",
              "/order/confirmation", "/somewhere")}
    assert kinds == {"/": "the home page", "/search?q=x": "search results", "/product/9": "a product page",
                     "/cart": "the cart", "/checkout": "the checkout", "/signup": "the sign-up page",
                     "/login": "the log-in page", "/help/returns": "a help page",
                     "/order/confirmation": "the order confirmation", "/somewhere": None}

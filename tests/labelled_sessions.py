"""Labelled sessions: each one a behaviour a product manager recognizes, with what a summary
must say about it (used by the summary, privacy and end-to-end tests)."""
from __future__ import annotations

from typing import Any

from tests.sessions_factory import at, make_session

SITE = "https://app.test"
DEVICE = {"type": "desktop", "os": "macOS", "browser": "Firefox"}

# Secrets planted in the session with secrets: none may reach any output.
PLANTED_SECRETS = ("hunter2-Sup3rSecret", "alice@example.com", "alice%40example.com", "4111111111111111",
                   "4111 1111 1111 1111", "tok_9f8e7d6c5b4a3f2e1d0c", "Acme Secret Holdings", "555-12-3456",
                   "YWxpY2VAZXhhbXBsZS5jb20")


def nav(seconds: float, path: str, **extra: Any) -> dict:
    return {"timestamp": at(seconds), "type": "navigate", "url": SITE + path, **extra}


def click(seconds: float, text: str, selector: str = "button") -> dict:
    return {"timestamp": at(seconds), "type": "click", "target": {"selector": selector, "text": text}}


def typed(seconds: float, selector: str) -> dict:
    return {"timestamp": at(seconds), "type": "input-change", "target": {"selector": selector}, "value": "[masked]"}


def api_error(seconds: float, status: int, method: str, path: str, message: str = None) -> dict:
    error = {"status": status, "method": method, "request_url": SITE + path}
    if message:
        error["message"] = message
    return {"timestamp": at(seconds), "type": "network-error", "error": error}


def failing_signup() -> dict:
    """Four tries to create an account, each rejected with 422 “email is invalid”, then rage and leave."""
    events = [nav(0, "/", device=DEVICE), click(5, "Sign up", "a.cta"), nav(6, "/signup"),
              typed(12, "input#email"), typed(20, "input#password")]
    for attempt in range(4):
        t = 30 + attempt * 15
        events += [click(t, "Create account", "button#create"),
                   api_error(t + 0.5, 422, "POST", "/api/signup", "email is invalid"),
                   typed(t + 5, "input#email")]
    events += [{"timestamp": at(92), "type": "rage-click", "target": {"selector": "button#create", "text": "Create account"},
                "properties": {"count": 5}}]
    events += [nav(100, "/pricing")]
    return make_session(events, session_id="signup-fail")


def failed_payment() -> dict:
    """A shopper adds to the cart, pays, gets 402 “Payment declined” twice, and leaves."""
    events = [nav(0, "/product/blue-mug", device=DEVICE),
              click(10, "Add to cart", "button.add"),
              {"timestamp": at(11), "type": "custom", "name": "Added to Cart", "properties": {"name": "Blue Mug"}},
              nav(20, "/cart"), click(25, "Checkout", "a.checkout"), nav(26, "/checkout"),
              typed(30, "input#card-number"), typed(40, "input#expiry")]
    for attempt in range(2):
        t = 50 + attempt * 20
        events += [click(t, "Pay now", "button#pay"),
                   api_error(t + 1, 402, "POST", "/api/payments", "Payment declined"),
                   {"timestamp": at(t + 1.2), "type": "console-error",
                    "error": {"message": "Uncaught (in promise) PaymentError: Payment declined"}}]
    return make_session(events, session_id="payment-fail")


def converted_with_harmless_error() -> dict:
    """A purchase that succeeds; a console error on the product page never got in the way."""
    events = [nav(0, "/product/red-shoes", device=DEVICE),
              {"timestamp": at(3), "type": "console-error", "error": {"message": "ResizeObserver loop limit exceeded"}},
              click(10, "Add to cart", "button.add"),
              {"timestamp": at(11), "type": "custom", "name": "Added to Cart", "properties": {"name": "Red Shoes"}},
              nav(20, "/checkout"), typed(25, "input#card-number"), click(40, "Place order", "button#order"),
              nav(42, "/order/confirmation"),
              {"timestamp": at(43), "type": "custom", "name": "Order Completed", "properties": {"revenue": 89}}]
    return make_session(events, session_id="converted")


def reader() -> dict:
    """Someone reading three articles: no goal, no trouble."""
    events = [nav(0, "/blog", device=DEVICE), {"timestamp": at(20), "type": "scroll"},
              click(30, "How we ship", "a.post"), nav(31, "/blog/how-we-ship"),
              {"timestamp": at(90), "type": "scroll"}, click(200, "Next article", "a.next"),
              nav(201, "/blog/returns"), {"timestamp": at(300), "type": "scroll"}]
    return make_session(events, session_id="reader")


def with_secrets() -> dict:
    """Secrets in URLs (query, encoded email, token path), properties, error text, user and org."""
    user = {"id": "u-77", "email": "alice@example.com"}
    org = {"id": "o-1", "name": "Acme Secret Holdings"}
    events = [
        nav(0, "/login?password=hunter2-Sup3rSecret&email=alice%40example.com&utm_source=news", user=user, org=org,
            device=DEVICE),
        nav(5, "/reset/tok_9f8e7d6c5b4a3f2e1d0c/confirm"),
        nav(9, "/u/YWxpY2VAZXhhbXBsZS5jb20/profile"),
        {"timestamp": at(12), "type": "custom", "name": "Profile Saved",
         "properties": {"password": "hunter2-Sup3rSecret", "card": "4111 1111 1111 1111", "plan": "pro",
                        "note": "ssn 555-12-3456"}},
        click(15, "Email alice@example.com", "a.mail"),
        api_error(16, 500, "GET", "/api/cards?number=4111111111111111", "card 4111111111111111 rejected for alice@example.com"),
    ]
    return make_session(events, session_id="secrets")

"""What a visitor may come to do: goals whose reach or abandonment is a session's outcome.

A goal is reached by one of its custom events or by a page whose URL matches one of its reach
patterns; it is attempted (so it can be abandoned) by one of its start events, a page matching a
start pattern, or a click whose label matches a start pattern. Defaults cover purchase, sign-up,
log-in and contact; `REPLAYLENS_SUMMARY_GOALS` (a JSON list) replaces them for any product.
Patterns are case-insensitive regular expressions searched in the URL path (reach/start URL) or
the clicked element's text and selector (start clicks).
"""
from __future__ import annotations

from pydantic import BaseModel, Field


class Goal(BaseModel):
    name: str = Field(description="What the visitor came to do, in a few words: 'purchase', 'sign-up'")
    events: list[str] = Field(default_factory=list, description="Custom events that mean the goal was reached")
    url_patterns: list[str] = Field(default_factory=list, description="URL paths that mean the goal was reached")
    start_events: list[str] = Field(default_factory=list, description="Custom events that mean the visitor set out for it")
    start_url_patterns: list[str] = Field(default_factory=list, description="URL paths where the goal is pursued")
    start_click_patterns: list[str] = Field(default_factory=list, description="Click labels that pursue it")
    reached_words: str = Field(default="", description="How the outcome says it was reached, e.g. 'completed an order'")
    started_by_visit: bool = Field(default=False, description="Viewing a start page already sets out for it (a cart); else it takes a click or an edit there")
    intent: str = Field(default="", description="What the visitor came to do, for key insights, e.g. 'buy something'")


DEFAULT_GOALS: tuple[Goal, ...] = (
    Goal(name="purchase",
         events=["Order Completed", "Purchase", "Checkout Completed", "Purchase Completed",
                 "Order Placed", "Transaction Completed"],
         url_patterns=[r"order[-_/]?(confirmation|complete|completed|success|received)",
                       r"thank[-_]?you", r"checkout/(success|complete|confirmation)"],
         start_events=["Added to Cart", "Add to Cart", "Product Added", "Checkout Started",
                       "Begin Checkout", "Initiate Checkout", "Payment Info Entered",
                       "Checkout Step Completed"],
         start_url_patterns=[r"(?<![a-z-])(cart|basket|bag|checkout|payment)(?![a-z-])"],
         start_click_patterns=[r"add to (cart|bag|basket)", r"buy now", r"place order", r"\bpay\b",
                               r"check ?out"],
         reached_words="completed an order", intent="buy something", started_by_visit=True),
    Goal(name="sign-up",
         events=["Signed Up", "Sign Up Completed", "Account Created", "User Registered",
                 "Registration Completed", "Signup Completed"],
         url_patterns=[r"(sign-?up|register|registration)/(success|complete|done|thanks)",
                       r"/welcome(?![a-z])", r"/onboarding(?![a-z])", r"verify-email"],
         start_events=["Sign Up Started", "Signup Started", "Registration Started"],
         start_url_patterns=[r"sign-?up", r"register", r"/join(?![a-z])", r"create-account"],
         start_click_patterns=[r"sign ?up", r"create (an )?account", r"register"],
         reached_words="signed up", intent="sign up"),
    Goal(name="log-in",
         events=["Logged In", "Signed In", "Login Succeeded", "Login Completed"],
         url_patterns=[],
         start_events=["Login Started"],
         start_url_patterns=[r"log-?in", r"sign-?in"],
         start_click_patterns=[r"log ?in", r"sign ?in"],
         reached_words="logged in", intent="log in"),
    Goal(name="contact",
         events=["Contact Form Submitted", "Lead Created", "Demo Requested", "Form Submitted",
                 "Message Sent", "Ticket Created"],
         url_patterns=[r"contact/(thanks|thank-you|success|sent)", r"(demo|support)/(thanks|thank-you|success)"],
         start_events=[],
         start_url_patterns=[r"/contact(?![a-z])", r"request-demo", r"/demo(?![a-z])", r"support/new"],
         start_click_patterns=[r"send (message|request)", r"contact (us|sales)", r"request (a )?demo"],
         reached_words="sent the contact form", intent="get in touch"),
)

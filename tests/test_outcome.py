"""sinks/outcome.py: the outcome by goals, with failed attempts and the reason."""
from __future__ import annotations

from replaylens.schemas.profiles import DEFAULT_PROFILE
from replaylens.sinks.builtin import BuiltinSummarizer
from replaylens.sinks.profile_view import build_view
from tests.labelled_sessions import api_error, click, nav, typed
from tests.sessions_factory import make_session

SUMMARIZER = BuiltinSummarizer()


def outcome(*events):
    return SUMMARIZER.analyze(build_view(make_session(list(events)), DEFAULT_PROFILE)).outcome


def test_reached_after_failed_attempts_says_how_many():
    result = outcome(nav(0, "/login"), typed(1, "input#password"), click(2, "Log in"),
                     api_error(2.5, 401, "POST", "/api/login", "wrong password"),
                     typed(5, "input#password"), click(6, "Log in"), nav(7, "/dashboard"))
    assert (result.status, result.goal, result.failed_attempts) == ("converted", "log-in", 1)
    assert result.evidence == "reached /dashboard at 0:07, after 1 failed attempt"


def test_an_add_to_cart_that_failed_before_the_user_left_is_an_abandoned_purchase_with_its_reason():
    result = outcome(nav(0, "/product/9"), click(5, "Add to cart"),
                     api_error(5.5, 500, "POST", "/api/cart", "Internal error"), nav(30, "/"))
    assert (result.status, result.goal, result.failed_attempts, result.reason) == \
        ("abandoned", "purchase", 1, "Internal error")


def test_nothing_set_out_for_is_neutral():
    assert outcome(nav(0, "/blog"), click(3, "Next")).status == "neutral"


def test_a_javascript_error_after_an_ordinary_link_explains_nothing():
    analysis = SUMMARIZER.analyze(build_view(make_session([
        nav(0, "/product/9"), click(5, "Add to cart"),
        {"timestamp": 1_700_000_006_000, "type": "custom", "name": "Added to Cart"},
        click(9, "Cart", "a.cart"), nav(9.3, "/cart"),
        {"timestamp": 1_700_000_009_800, "type": "console-error", "error": {"message": "analytics is not defined"}},
        nav(40, "/blog")]), DEFAULT_PROFILE))
    error = next(i for i in analysis.potential_issues if i.type == "error")
    assert error.severity == "low" and not error.blocking
    assert analysis.outcome.status == "abandoned" and analysis.outcome.reason is None
    assert [i.type for i in analysis.potential_issues][0] == "abandonment"  # the abandonment is the finding

"""sinks/journey.py: one step per page view, in plain words, saying when it shortens."""
from __future__ import annotations

from replaylens.config.privacy import PrivacyPolicy
from replaylens.schemas.profiles import DEFAULT_PROFILE
from replaylens.sinks.journey import MAX_ACTIONS_PER_STEP, build_journey, describe_action, page_actions
from replaylens.sinks.profile_view import build_view
from tests.labelled_sessions import click, nav, typed
from tests.sessions_factory import make_session

POLICY = PrivacyPolicy()


def test_actions_in_plain_words_never_values():
    assert describe_action(typed(1, "input#card-number"), POLICY) == "filled in “card number”"
    assert describe_action({"type": "custom", "name": "Added to Cart", "properties": {"name": "Mug"}}, POLICY) \
        == "added “Mug” to the cart"
    assert describe_action({"type": "custom", "name": "Order Completed"}, POLICY,
                           {"ordercompleted": "completed an order"}) == "completed an order"
    assert describe_action({"type": "scroll"}, POLICY) is None


def test_a_long_page_says_how_many_more_actions():
    items = [click(n, f"Item {n}") for n in range(10)]
    actions = page_actions(items, POLICY)
    assert len(actions) == MAX_ACTIONS_PER_STEP and actions[-1] == "and 5 more actions"
    assert page_actions(items[:7], POLICY)[-1] == "and 2 more actions"
    assert page_actions(items[:6], POLICY)[-1] == "clicked “Item 5”"


def test_one_step_per_page_view_with_masked_urls_and_links():
    view = build_view(make_session([nav(0, "/a?token=abc"), click(2, "Go"), nav(5, "/b")]), DEFAULT_PROFILE)
    steps = build_journey(view, [], POLICY, lambda ts: f"L{ts}")
    assert [s.url for s in steps] == ["https://app.test/a?token=[masked]", "https://app.test/b"]
    assert steps[0].actions == ["clicked “Go”"] and steps[0].link == f"L{view.started_at}"

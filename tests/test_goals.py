"""sinks/goals.py and config/goals.py: which goal a session set out for and reached."""
from __future__ import annotations

from replaylens.config.goals import DEFAULT_GOALS, Goal
from replaylens.sinks.goals import compile_goals, track_goals
from tests.labelled_sessions import SITE, api_error, click, nav, typed
from tests.sessions_factory import make_session

GOALS = compile_goals(DEFAULT_GOALS)


def progress(events, goals=GOALS):
    return {p.goal.name: (p.started is not None, p.reached is not None)
            for p in track_goals(make_session(events)["events"], goals)}


def test_a_purchase_is_reached_by_its_event_or_its_confirmation_page():
    assert progress([nav(0, "/cart"), {"timestamp": 10_000, "type": "custom", "name": "Order Completed"}]) \
        == {"purchase": (True, True)}
    assert progress([nav(0, "/checkout"), nav(9, "/thank-you")]) == {"purchase": (True, True)}
    assert progress([nav(0, "/cart"), nav(9, "/blog")]) == {"purchase": (True, False)}


def test_visiting_a_form_page_is_not_setting_out_working_on_it_is():
    assert progress([nav(0, "/signup"), nav(5, "/pricing")]) == {}
    assert progress([nav(0, "/signup"), typed(3, "input#email"), nav(5, "/pricing")]) == {"sign-up": (True, False)}


def test_a_log_in_is_reached_by_leaving_its_page_after_a_submit_that_did_not_fail():
    assert progress([nav(0, "/login"), typed(2, "input#email"), click(4, "Log in"), nav(5, "/dashboard")]) \
        == {"log-in": (True, True)}
    failed = [nav(0, "/login"), typed(2, "input#email"), click(4, "Log in"),
              api_error(4.5, 401, "POST", "/api/login", "wrong password"), nav(9, "/")]
    assert progress(failed) == {"log-in": (True, False)}


def test_any_product_brings_its_own_goals():
    demo = Goal(name="demo", events=["Demo Booked"], start_url_patterns=["/book"], reached_words="booked a demo")
    goals = compile_goals([demo])
    events = [nav(0, "/book"), click(2, "Tuesday 10:00"),
              {"timestamp": 1_700_000_003_000, "type": "custom", "name": "demo booked"}]
    assert progress(events, goals) == {"demo": (True, True)}  # names match case- and space-insensitively
    assert SITE  # the labelled sessions' site


def test_goals_come_from_one_json_setting(monkeypatch):
    from replaylens.config.settings import Settings
    from replaylens.sinks.builtin import BuiltinSummarizer

    monkeypatch.setenv("REPLAYLENS_SUMMARY_GOALS",
                       '[{"name": "demo", "events": ["Demo Booked"], "start_url_patterns": ["/book"]}]')
    settings = Settings()
    assert [g.name for g in settings.summary_goals] == ["demo"]
    assert [g.name for g in BuiltinSummarizer.from_settings(settings).goals] == ["demo"]
    assert [g.name for g in Settings(_env_file=None).summary_goals] == ["demo"]  # env wins
    monkeypatch.delenv("REPLAYLENS_SUMMARY_GOALS")
    assert [g.name for g in Settings().summary_goals] == ["purchase", "sign-up", "log-in", "contact"]

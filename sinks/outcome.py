"""How the session ended, by goals: which goal was reached or abandoned, after how many failed
attempts, and why when an issue explains it (pure)."""
from __future__ import annotations

from typing import Callable, Optional

from replaylens.config.privacy import PrivacyPolicy
from replaylens.config.wording import clock, plural
from replaylens.schemas.summaries import Evidence, Outcome, PotentialIssue
from replaylens.sinks.describe import Event, page_label, quoted
from replaylens.sinks.goals import GoalProgress
from replaylens.sinks.journey import describe_action, describe_custom
from replaylens.sinks.profile_view import SessionView


def _moment_words(event: Event, policy: PrivacyPolicy) -> str:
    etype = event.get("type")
    if etype == "custom":
        return quoted(policy.text(event.get("name") or "") or "")
    if etype == "navigate":
        return f"reached {page_label(event.get('url'), policy)}"
    return describe_action(event, policy) or "started"


def _start_words(event: Event, policy: PrivacyPolicy) -> str:
    if event.get("type") == "custom":
        return describe_custom(event, policy)
    if event.get("type") == "navigate":
        return f"went to {page_label(event.get('url'), policy)}"
    return f"{describe_action(event, policy) or 'started'} on {page_label(event.get('url'), policy)}"


def _failures(goal: str, issues: list[PotentialIssue], before: Optional[int] = None) -> list[PotentialIssue]:
    return [i for i in issues if i.type == "error" and i.goal == goal
            and (before is None or i.timestamp < before)]


def decide_outcome(view: SessionView, goals: list[GoalProgress], issues: list[PotentialIssue],
                   policy: PrivacyPolicy) -> Outcome:
    offset: Callable[[int], str] = lambda ts: clock(ts - view.started_at)
    reached = [g for g in goals if g.reached is not None]
    if reached:
        state = reached[0]
        event = state.reached
        failed = sum(i.attempts for i in _failures(state.goal.name, issues, event["timestamp"]))
        evidence = f"{_moment_words(event, policy)} at {offset(event['timestamp'])}"
        if failed:
            evidence += f", after {plural(failed, 'failed attempt')}"
        return Outcome(status="converted", evidence=evidence, goal=state.goal.name, failed_attempts=failed)
    started = [g for g in goals if g.started is not None]
    if not started:
        return Outcome(status="neutral")
    state = max(started, key=lambda g: g.started["timestamp"])
    name = state.goal.name
    blocking = [i for i in _failures(name, issues) if i.blocking]
    failed = sum(i.attempts for i in blocking)
    reached_words = state.goal.goal.reached_words or f"reached the {name} goal"
    evidence = (f"{_start_words(state.started, policy)} at {offset(state.started['timestamp'])} "
                f"but never {reached_words}")
    reason = None
    if blocking:
        top = blocking[0]
        reason = top.message or top.description
        evidence += f": {plural(failed, 'attempt')} failed" + (f" with {quoted(top.message)}" if top.message else "")
    return Outcome(status="abandoned", evidence=evidence, goal=name, failed_attempts=failed, reason=reason)


def abandonment_issue(view: SessionView, outcome: Outcome, goals: list[GoalProgress],
                      link: Callable[[int], str], policy: PrivacyPolicy) -> Optional[PotentialIssue]:
    """A goal given up with no failure to explain it is an issue of its own (a failure already is)."""
    if outcome.status != "abandoned" or outcome.reason is not None:
        return None
    state = next(g for g in goals if g.goal.name == outcome.goal)
    event = state.started
    ts = int(event["timestamp"])
    text = f"Abandoned {outcome.goal}: {outcome.evidence}"
    return PotentialIssue(type="abandonment", description=text, url=policy.url(event.get("url")), timestamp=ts, link=link(ts), event_id=event.get("event_id"),
                          severity="medium", blocking=True, goal=outcome.goal,
                          evidence=[Evidence(what=text, timestamp=ts, link=link(ts), event_id=event.get("event_id"))])

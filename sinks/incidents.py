"""Potential issues as incidents: the signals of one failure grouped into one issue (pure).

An incident starts at an error (a failed request or a JavaScript error). The interaction that
set it off (the click or the edit just before, on the same page), its retries (the same error
again), errors it set off (a JavaScript error right after a failed request) and the frustration
after it (rage, dead and error clicks on that page) are its evidence, each with a time-coded
link. Its severity says how much it hurt: high when it stood between the user and a goal they
did not reach, low when the user got past it (or nothing shows it mattered).

Other findings (frustration with no error, slow pages, a field edited over and over, a goal
abandoned with no error to explain it) are issues of their own. Issues are ranked by impact.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Callable, Optional

from replaylens.config.privacy import PrivacyPolicy
from replaylens.config.wording import plural, short_duration
from replaylens.schemas.events import ERROR_TYPES
from replaylens.schemas.summaries import Evidence, PotentialIssue
from replaylens.sinks.describe import (Event, describe_error, error_message, field_label, of_types, page_label,
                                       positions_of_types, quoted, target_label, url_path)
from replaylens.sinks.goals import GoalProgress
from replaylens.sinks.profile_view import SessionView
from replaylens.sinks.vocabulary import is_submit_click

Link = Callable[[int], str]
Signal = dict[str, Any]

TRIGGER_WINDOW_MS = 5_000        # an error this soon after a click or edit on its page was set off by it
CASCADE_WINDOW_MS = 2_000        # a second, different error this soon after one is the same failure
AFTERMATH_WINDOW_MS = 30_000     # frustration this soon after a failure on its page belongs to it
REPEATED_EDITS = 4               # returning to one field this many separate times is form trouble
EDIT_RUN_GAP_MS = 2_000          # pauses longer than this start a new edit of a field
MAX_EVIDENCE = 12
SEVERITY_RANK = {"high": 0, "medium": 1, "low": 2}
VITALS_TYPES = frozenset({"web-vitals"})
EDIT_RUN_TYPES = frozenset({"navigate", "input-change"})  # a page change ends an edit
INTERACTIONS = frozenset({"input-change", "click", "error-click", "dead-click", "rage-click"})
SIGNAL_WORDS = {"rage-click": "rage click", "dead-click": "dead click", "error-click": "error click",
                "mouse-thrash": "mouse thrash"}
SIGNAL_SEVERITY = {"rage-click": "medium", "error-click": "medium", "dead-click": "low", "mouse-thrash": "low"}


@dataclass(frozen=True)
class VitalsThresholds:
    """Values above these make a page slow. LCP and INP in ms, CLS unitless."""

    lcp_ms: float = 2500
    inp_ms: float = 200
    cls: float = 0.1

    @cached_property
    def limits(self) -> tuple[tuple[str, float], ...]:
        """(metric, threshold) for each metric, made once (every web-vitals event is checked)."""
        return (("lcp", self.lcp_ms), ("inp", self.inp_ms), ("cls", self.cls))


# Google's "good" Core Web Vitals thresholds (https://web.dev/articles/vitals).
GOOD_VITALS = VitalsThresholds()
# Google's "poor" thresholds: only flag pages that are clearly slow.
POOR_VITALS = VitalsThresholds(lcp_ms=4000, inp_ms=500, cls=0.25)


@dataclass(frozen=True)
class IssueRules:
    policy: PrivacyPolicy
    link: Link
    vitals: VitalsThresholds = POOR_VITALS
    report_nonblocking: bool = True


@dataclass
class Incident:
    key: tuple[Any, ...]
    page: Optional[str]
    errors: list[Event]
    triggers: list[Event] = field(default_factory=list)
    signals: list[Signal] = field(default_factory=list)
    keys: set[tuple[Any, ...]] = field(default_factory=set)

    @property
    def start(self) -> int:
        return min([e["timestamp"] for e in self.errors] + [t["timestamp"] for t in self.triggers])

    @property
    def end(self) -> int:
        return max([e["timestamp"] for e in self.errors] + [s["timestamp"] for s in self.signals])

    @property
    def main_error(self) -> Event:
        """The failed request when there is one (it says most), else the first error."""
        return next((e for e in self.errors if e.get("type") == "network-error"), self.errors[0])

    @property
    def attempts(self) -> int:
        return max(len(self.triggers), sum(1 for e in self.errors if _error_key(e) == self.key))


def _error_key(event: Event) -> tuple[Any, ...]:
    error = event.get("error") or {}
    page = url_path(event.get("url"))
    if event.get("type") == "console-error":
        return ("js", error.get("message"), page)
    return ("api", (error.get("method") or "").upper(), url_path(error.get("request_url")),
            error.get("status"), page)


def _trigger(events: list[Event], index: int) -> Optional[Event]:
    """The click or edit just before events[index] on the same page, within the window."""
    moment = events[index]["timestamp"]
    for prior in reversed(events[max(0, index - 20):index]):
        if moment - prior["timestamp"] > TRIGGER_WINDOW_MS or prior.get("type") == "navigate":
            return None
        if prior.get("type") in INTERACTIONS:
            return prior
    return None


def group_errors(events: list[Event]) -> list[Incident]:
    """Errors grouped into incidents, in time order of their first error."""
    incidents: list[Incident] = []
    by_key: dict[tuple[Any, ...], Incident] = {}
    for index, event in positions_of_types(events, ERROR_TYPES):
        key = _error_key(event)
        trigger = _trigger(events, index)
        incident = by_key.get(key) or _same_failure(incidents, event, trigger)
        if incident is None:
            incident = Incident(key, event.get("url"), [])
            incidents.append(incident)
        by_key.setdefault(key, incident)
        incident.keys.add(key)
        incident.errors.append(event)
        if trigger is not None and all(t is not trigger for t in incident.triggers):
            incident.triggers.append(trigger)
    return incidents


def _same_failure(incidents: list[Incident], event: Event, trigger: Optional[Event]) -> Optional[Incident]:
    """An incident this different error belongs to: set off by the same click, or right after."""
    page = url_path(event.get("url"))
    for incident in reversed(incidents):
        if url_path(incident.page) != page:
            continue
        if trigger is not None and incident.triggers and incident.triggers[-1] is trigger:
            return incident
        if event["timestamp"] - incident.errors[-1]["timestamp"] <= CASCADE_WINDOW_MS:
            return incident
    return None


def attach_signals(incidents: list[Incident], signals: list[Signal]) -> list[Signal]:
    """Give each incident the frustration on its page around it; returns the signals left over."""
    left = []
    for signal in signals:
        page = url_path(signal.get("url"))
        owner = None
        for incident in incidents:
            if signal["type"] == "error-click" and _sets_off(signal, incident):
                owner = incident  # the error may come from the page the click led to
                break
            if url_path(incident.page) != page:
                continue
            last_error = max(e["timestamp"] for e in incident.errors)
            if incident.start - TRIGGER_WINDOW_MS <= signal["timestamp"] <= last_error + AFTERMATH_WINDOW_MS:
                owner = incident
                break
        if owner is None:
            left.append(signal)
        else:
            owner.signals.append(signal)
    return left


def _sets_off(signal: Signal, incident: Incident) -> bool:
    """An error click whose error is one of this incident's (it follows within the trigger window)."""
    return any(0 <= e["timestamp"] - signal["timestamp"] <= TRIGGER_WINDOW_MS for e in incident.errors)


# --------------------------------------------------------------------------- goals and severity

def _goal_of(incident: Incident, goals: list[GoalProgress]) -> Optional[GoalProgress]:
    for state in goals:
        goal = state.goal
        if goal.is_goal_page(incident.page) or any(goal.started_by(t) for t in incident.triggers):
            return state
    pursued = [s for s in goals if s.started is not None and s.started["timestamp"] <= incident.start
               and (s.reached is None or s.reached["timestamp"] > incident.start)]
    return pursued[-1] if pursued else None


def _got_past(incident: Incident, goals: list[GoalProgress]) -> Optional[GoalProgress]:
    """A goal the user reached after the incident: it did not stop them."""
    return next((s for s in goals if s.reached is not None and s.reached["timestamp"] > incident.end), None)


def _hurt(incident: Incident) -> bool:
    """Whether anything shows the failure got in the user's way: a failed request, frustration
    after it, or a JavaScript error right after a submit. A JavaScript error after an ordinary
    click (a link that went on to load its page) shows nothing of the kind."""
    if incident.main_error.get("type") == "network-error":
        return True
    if any(s["type"] != "error-click" for s in incident.signals):
        return True
    return any(is_submit_click(t) or t.get("type") == "input-change" for t in incident.triggers)


def _severity(incident: Incident, goal: Optional[GoalProgress], got_past: Optional[GoalProgress]) -> tuple[str, bool]:
    """(severity, blocking)."""
    if got_past is not None:
        return "low", False
    if not _hurt(incident):
        return "low", False
    return ("high" if goal is not None else "medium"), True


# --------------------------------------------------------------------------- words

def _signal_moment(signal: Signal, policy: PrivacyPolicy) -> str:
    count = int(signal.get("count") or 1)
    what = target_label(signal, policy)
    kind = signal["type"]
    if kind == "rage-click":
        return f"rage-clicked {what}" + (f" {count} times" if count > 1 else "")
    if kind == "dead-click":
        return f"clicked {what} and nothing happened"
    if kind == "error-click":
        return f"clicked {what} and got an error"
    return "moved the mouse erratically"


def _trigger_words(trigger: Event, policy: PrivacyPolicy) -> str:
    if trigger.get("type") == "input-change":
        return f"editing {quoted(field_label(trigger, policy))}"
    return f"clicking {target_label(trigger, policy)}"


def _aftermath(signals: list[Signal]) -> str:
    counts: dict[str, int] = defaultdict(int)
    for signal in signals:
        if signal["type"] != "error-click":  # the error itself already says it
            counts[signal["type"]] += 1
    parts = [plural(n, SIGNAL_WORDS[k]) for k, n in counts.items()]
    return f"; then {' and '.join(parts)}" if parts else ""


def describe_incident(incident: Incident, goal: Optional[GoalProgress], got_past: Optional[GoalProgress],
                      blocking: bool, policy: PrivacyPolicy) -> str:
    where = page_label(incident.page, policy)
    error = describe_error(incident.main_error, policy)
    if error_message(incident.main_error, policy) is None:
        message = incident_message(incident, policy)
        error += f" {quoted(message)}" if message else ""
    times = f" {incident.attempts} times" if incident.attempts > 1 else ""
    if incident.triggers:
        trigger = _trigger_words(incident.triggers[0], policy)
        text = f"{trigger[0].upper()}{trigger[1:]} on {where} failed{times} ({error})"
    else:
        text = f"{error} on {where}" + (f" ({incident.attempts} times)" if incident.attempts > 1 else "")
    if len(incident.keys) > 1 and any(e.get("type") == "console-error" for e in incident.errors) \
            and incident.main_error.get("type") == "network-error":
        text += ", with a JavaScript error"
    text += _aftermath(incident.signals)
    if blocking and goal is not None:
        lead = text[0].lower() + text[1:] if text.startswith(("Clicking", "Editing")) else text
        text = f"{goal.goal.name[0].upper()}{goal.goal.name[1:]} blocked: {lead}"
    if got_past is not None:
        text += f" (not blocking: the user went on and {got_past.goal.goal.reached_words or 'reached ' + got_past.goal.name})"
    return text


def incident_message(incident: Incident, policy: PrivacyPolicy) -> Optional[str]:
    """The failure's own words: the main error's message, else any of its errors'."""
    for event in [incident.main_error] + incident.errors:
        message = error_message(event, policy)
        if message:
            return message
    return None


def _evidence(incident: Incident, rules: IssueRules) -> list[Evidence]:
    moments: list[tuple[int, str, Optional[str]]] = []
    moments += [(t["timestamp"], _trigger_words(t, rules.policy).replace("clicking", "clicked", 1)
                 .replace("editing", "edited", 1), t.get("event_id")) for t in incident.triggers]
    moments += [(e["timestamp"], describe_error(e, rules.policy), e.get("event_id")) for e in incident.errors]
    moments += [(s["timestamp"], _signal_moment(s, rules.policy), s.get("event_id")) for s in incident.signals]
    moments.sort(key=lambda m: m[0])
    return [Evidence(what=what, timestamp=int(ts), link=rules.link(int(ts)), event_id=eid)
            for ts, what, eid in moments[:MAX_EVIDENCE]]


def incident_issues(view: SessionView, signals: list[Signal], goals: list[GoalProgress],
                    rules: IssueRules) -> tuple[list[PotentialIssue], list[Signal]]:
    """One issue per incident; returns the issues and the signals no incident took."""
    incidents = group_errors(view.events)
    left = attach_signals(incidents, signals)
    issues = []
    for incident in incidents:
        goal = _goal_of(incident, goals)
        got_past = _got_past(incident, goals)
        severity, blocking = _severity(incident, goal, got_past)
        if got_past is not None and not rules.report_nonblocking:
            continue
        first = min(incident.triggers + incident.errors, key=lambda e: e["timestamp"])
        issues.append(PotentialIssue(
            type="error", description=describe_incident(incident, goal, got_past, blocking, rules.policy),
            url=rules.policy.url(incident.page), timestamp=int(first["timestamp"]),
            link=rules.link(int(first["timestamp"])), event_id=first.get("event_id"),
            severity=severity, blocking=blocking, message=incident_message(incident, rules.policy),
            attempts=incident.attempts, goal=goal.goal.name if goal else None,
            evidence=_evidence(incident, rules)))
    return issues, left


# --------------------------------------------------------------------------- other findings

def describe_signal(signal: Signal, policy: PrivacyPolicy) -> str:
    what = target_label(signal, policy)
    where = page_label(signal.get("url"), policy)
    count = int(signal.get("count") or 1)
    kind = signal["type"]
    if kind == "rage-click":
        times = f"{count} times " if count > 1 else "repeatedly "
        text = f"Rage click: clicked {what} {times}in quick succession on {where}"
    elif kind == "dead-click":
        text = f"Dead click: clicked {what} on {where} and nothing happened"
    elif kind == "error-click":
        text = f"Error click: clicking {what} on {where} was followed by an error"
    else:
        text = f"Mouse thrashing on {where}: erratic movement, a sign of confusion"
    detail = policy.text(signal.get("detail") or "")
    return f"{text} ({detail[:100]})" if detail else text


def _issue(kind: str, description: str, moment: dict[str, Any], severity: str, rules: IssueRules,
           goal: Optional[str] = None) -> PotentialIssue:
    ts = int(moment["timestamp"])
    return PotentialIssue(type=kind, description=description, url=rules.policy.url(moment.get("url")),
                          timestamp=ts, link=rules.link(ts), event_id=moment.get("event_id"),
                          severity=severity, goal=goal,
                          evidence=[Evidence(what=description, timestamp=ts, link=rules.link(ts),
                                             event_id=moment.get("event_id"))])


def signal_issues(signals: list[Signal], rules: IssueRules) -> list[PotentialIssue]:
    return [_issue(s["type"], describe_signal(s, rules.policy), s, SIGNAL_SEVERITY[s["type"]], rules)
            for s in signals]


def _poor_vitals(metrics: dict[str, Any], limits: VitalsThresholds) -> dict[str, float]:
    poor = {}
    for name, limit in limits.limits:
        value = metrics.get(name)
        if isinstance(value, (int, float)) and value > limit:
            poor[name] = float(value)
    return poor


def describe_vitals(poor: dict[str, float], limits: VitalsThresholds = GOOD_VITALS) -> str:
    word = "good" if limits is GOOD_VITALS or limits == GOOD_VITALS else "limit"
    parts = []
    if "lcp" in poor:
        parts.append(f"LCP {short_duration(poor['lcp'])} ({word} ≤ {short_duration(limits.lcp_ms)})")
    if "inp" in poor:
        parts.append(f"INP {short_duration(poor['inp'])} ({word} ≤ {short_duration(limits.inp_ms)})")
    if "cls" in poor:
        parts.append(f"CLS {poor['cls']:.2f} ({word} ≤ {limits.cls:g})")
    return ", ".join(parts)


def slow_page_issues(view: SessionView, goals: list[GoalProgress], rules: IssueRules) -> list[PotentialIssue]:
    """One issue per page with any poor Core Web Vital, citing its worst values."""
    first: dict[Optional[str], Event] = {}
    worst: dict[Optional[str], dict[str, float]] = defaultdict(dict)
    for event in of_types(view.events, VITALS_TYPES):
        poor = _poor_vitals(event.get("metrics") or {}, rules.vitals)
        if not poor:
            continue
        url = event.get("url")
        first.setdefault(url, event)
        for name, value in poor.items():
            worst[url][name] = max(value, worst[url].get(name, value))
    issues = []
    for url, event in first.items():
        on_goal = next((s.goal.name for s in goals if s.goal.is_goal_page(url)), None)
        issues.append(_issue("slow-page", f"Slow page {page_label(url, rules.policy)}: "
                             f"{describe_vitals(worst[url], rules.vitals)}", event,
                             "medium" if on_goal else "low", rules, on_goal))
    return issues


def _edit_runs(events: list[Event]) -> dict[str, list[Event]]:
    """Per field, the first event of each separate edit (typing bursts count once)."""
    runs: dict[str, list[Event]] = defaultdict(list)
    last_field: Optional[str] = None
    last_time = 0
    for event in of_types(events, EDIT_RUN_TYPES):
        etype = event.get("type")
        if etype == "navigate":
            last_field = None
        if etype != "input-change":
            continue
        target = event.get("target") or {}
        name = target.get("selector") or target.get("text")
        if not name:
            continue
        if name != last_field or event["timestamp"] - last_time > EDIT_RUN_GAP_MS:
            runs[name].append(event)
        last_field, last_time = name, event["timestamp"]
    return runs


def form_trouble_issues(view: SessionView, goals: list[GoalProgress], incident_list: list[PotentialIssue],
                        rules: IssueRules) -> list[PotentialIssue]:
    """A field edited over and over, unless an incident on its page already tells that story."""
    issues = []
    incident_pages = {url_path(i.url) for i in incident_list}
    for starts in _edit_runs(view.events).values():
        if len(starts) < REPEATED_EDITS:
            continue
        event = starts[0]
        if url_path(rules.policy.url(event.get("url"))) in incident_pages:
            continue
        on_goal = next((s.goal.name for s in goals if s.goal.is_goal_page(event.get("url"))), None)
        issues.append(_issue(
            "form-trouble",
            f"Form trouble: edited {quoted(field_label(event, rules.policy))} {len(starts)} separate times "
            f"on {page_label(event.get('url'), rules.policy)}", event, "medium" if on_goal else "low",
            rules, on_goal))
    return issues


def rank(issues: list[PotentialIssue]) -> list[PotentialIssue]:
    """By impact: blocking failures on a goal first, then severity, attempts and time."""
    return sorted(issues, key=lambda i: (SEVERITY_RANK[i.severity], i.goal is None, not i.blocking,
                                         -i.attempts, i.timestamp))

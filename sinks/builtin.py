"""The built-in summarizer: a deterministic, useful summary without any LLM (pure).

It summarizes the SessionView a profile selects (filters, slice, context), in the shape of
Heap's session summaries (overview, key insights, potential issues with time-coded
LogRocket-style links, comparison with the average experience, journey). With a profile
`output_schema` the summary is a JSON string valid against that schema instead.

`analyze()` is public so the LLM summarizer can reuse the deterministic findings.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional

from replaylens.aggregates.urls import display_path
from replaylens.config.goals import Goal
from replaylens.config.privacy import DEFAULT_POLICY, PrivacyPolicy
from replaylens.config.settings import setting_default
from replaylens.config.wording import clock, human_duration, listing, plural
from replaylens.schemas.profiles import SummaryProfile
from replaylens.schemas.sessions import Comparison
from replaylens.schemas.summaries import JourneyStep, Outcome, PotentialIssue, Summary
from replaylens.sinks import incidents as found
from replaylens.sinks.describe import field_label, of_types, page_label, positions_of_types, quoted
from replaylens.sinks.goals import CompiledGoal, GoalProgress, compile_goals, track_goals
from replaylens.sinks.journey import build_journey
from replaylens.sinks.links import LinkSettings, md_link
from replaylens.sinks.outcome import abandonment_issue, decide_outcome
from replaylens.sinks.profile_view import SessionView, build_view
from replaylens.sinks.schema_fill import fill_schema
from replaylens.sinks.signals_view import frustration_signals
from replaylens.sinks.vocabulary import (CART_NAMES, is_search, named_product, norm, page_type, product_name,
                                         product_viewed, search_term, url_words, viewed_product)
from replaylens.schemas.events import FRUSTRATION_TYPES

MAX_LISTED = 6
ACTIVITY_TYPES = frozenset({"navigate", "input-change", "custom"})  # what gather_activity reads
MAX_STORY_STEPS = 10
MAX_FRICTION_LISTED = 3
_HELP_PATH = re.compile(r"help|support|faq|docs?|documentation|contact|knowledge|kb\b|guide", re.I)


@dataclass
class Analysis:
    key_insights: list[str] = field(default_factory=list)
    potential_issues: list[PotentialIssue] = field(default_factory=list)
    journey: list[JourneyStep] = field(default_factory=list)
    outcome: Outcome = field(default_factory=lambda: Outcome(status="neutral"))
    goals: list[GoalProgress] = field(default_factory=list)
    # Each journey step's page as a reader knows it (`page_label`): the insights, the markdown and
    # the JSON answers all say them.
    page_labels: list[str] = field(default_factory=list)

    def labels(self, policy: PrivacyPolicy) -> list[str]:
        """`page_labels`, made when the journey was set without them."""
        if len(self.page_labels) != len(self.journey):
            self.page_labels = [page_label(step.url, policy) for step in self.journey]
        return self.page_labels


_FINGERPRINTS: dict[int, tuple[SummaryProfile, str]] = {}


def profile_fingerprint(profile: SummaryProfile) -> str:
    """A hash of everything in the profile: edit the profile and summaries get new keys.

    Remembered per profile object (profiles are loaded once and not changed in place)."""
    known = _FINGERPRINTS.get(id(profile))
    if known is not None and known[0] is profile:
        return known[1]
    canonical = json.dumps(profile.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    fingerprint = hashlib.sha256(canonical.encode()).hexdigest()
    if len(_FINGERPRINTS) > 1000:
        _FINGERPRINTS.clear()
    _FINGERPRINTS[id(profile)] = (profile, fingerprint)
    return fingerprint


def idempotency_key(window_id: str, profile: SummaryProfile) -> str:
    """Same closed window + same profile content -> same key (re-deliveries dedupe)."""
    material = f"{window_id}\x1f{profile.id}\x1f{profile_fingerprint(profile)}"
    return hashlib.sha256(material.encode()).hexdigest()[:32]


def _unique(items: Iterable[Optional[str]]) -> list[str]:
    """The items that say something, each once, in first-seen order."""
    return list(dict.fromkeys(item for item in items if item))


def device_text(context: dict[str, Any], policy: PrivacyPolicy) -> Optional[str]:
    device = context.get("device") or {}
    kind = device.get("type")
    details = " on ".join(str(d) for d in (device.get("browser"), device.get("os")) if d)
    if not kind and not details:
        return None
    text = f"{kind} ({details})" if kind and details else (kind or details)
    return policy.text(str(text))


def location_text(context: dict[str, Any], policy: PrivacyPolicy) -> Optional[str]:
    location = context.get("location") or {}
    parts = [location.get(k) for k in ("city", "region", "country") if location.get(k)]
    return policy.text(", ".join(str(p) for p in parts)) if parts else None


@dataclass
class Activity:
    """What the key insights say a session did, gathered in one pass over its events."""

    search_terms: list[str] = field(default_factory=list)
    products: list[str] = field(default_factory=list)
    cart_adds: list[dict[str, Any]] = field(default_factory=list)
    fields: list[str] = field(default_factory=list)  # form fields filled in (not search boxes)


def gather_activity(events: list[dict[str, Any]], policy: PrivacyPolicy) -> Activity:
    """Searches, products viewed, cart adds and form fields, each list in order of first sight."""
    terms: dict[str, None] = {}
    products: dict[str, None] = {}
    fields: dict[str, None] = {}
    cart_adds = []
    for index, event in positions_of_types(events, ACTIVITY_TYPES):
        etype = event.get("type")
        if etype == "navigate":
            url = event.get("url")
            words = url_words(url, policy) if url else None
            if words and words.term:
                terms[words.term] = None
            if words and words.product:
                products[named_product(events, index, words.product, policy)] = None
        elif etype == "input-change":
            if not is_search(event, policy):
                label = field_label(event, policy)
                if label:
                    fields[label] = None
                continue
            term = search_term(event, policy)  # a search box: the words are in the page's URL
            if term:
                terms[term] = None
        elif etype == "custom":
            if is_search(event, policy):
                term = search_term(event, policy)
                if term:
                    terms[term] = None
            product = viewed_product(events, index, policy)
            if product is not None:
                products[product] = None
            if norm(event.get("name")) in CART_NAMES:
                cart_adds.append(event)
    return Activity(list(terms), list(products), cart_adds, list(fields))


def _derived(view: SessionView, signals: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The frustration signals the source did not send as events (those already are events)."""
    if not signals:
        return []
    source_ids = {e.get("event_id") for e in of_types(view.events, FRUSTRATION_TYPES)}
    return [s for s in signals if s.get("event_id") not in source_ids]


def _intent(goal: CompiledGoal) -> str:
    return goal.goal.intent or f"reach {quoted(goal.name)}"


class BuiltinSummarizer:
    name = "builtin"

    def __init__(self, link_template: Optional[str] = None, replay_base_url: Optional[str] = None, *,
                 policy: PrivacyPolicy = DEFAULT_POLICY, goals: Optional[Iterable[Goal]] = None,
                 vitals_thresholds: found.VitalsThresholds = found.GOOD_VITALS,
                 report_nonblocking: bool = True) -> None:
        self.links = LinkSettings(link_template, replay_base_url)
        self.policy = policy
        self.goals = compile_goals(goals if goals is not None else setting_default("summary_goals"))
        # "completed an order" for a goal's reach event in the journey, not "triggered “Order Completed”"
        self.goal_words = {name: g.goal.reached_words for g in self.goals for name in g.reach_names
                           if g.goal.reached_words}
        self.vitals = vitals_thresholds
        self.report_nonblocking = report_nonblocking

    @classmethod
    def from_settings(cls, settings: Any) -> "BuiltinSummarizer":
        vitals = found.POOR_VITALS if settings.summary_slow_page == "poor" else found.GOOD_VITALS
        return cls(settings.link_template, settings.replay_base_url,
                   policy=PrivacyPolicy.from_settings(settings), goals=settings.summary_goals,
                   vitals_thresholds=vitals, report_nonblocking=settings.summary_report_nonblocking_errors)

    # ------------------------------------------------------------------ analysis
    def analyze(self, view: SessionView) -> Analysis:
        link = self.links.for_session(view.session_id)
        rules = found.IssueRules(self.policy, link, self.vitals, self.report_nonblocking)
        goals = track_goals(view.events, self.goals)
        signals = frustration_signals(view)
        issues, left = found.incident_issues(view, signals, goals, rules)
        issues += found.signal_issues(left, rules)
        issues += found.slow_page_issues(view, goals, rules)
        issues += found.form_trouble_issues(view, goals, issues, rules)
        outcome = decide_outcome(view, goals, issues, self.policy)
        abandoned = abandonment_issue(view, outcome, goals, link, self.policy)
        if abandoned is not None:
            issues.append(abandoned)
        issues = found.rank(issues)
        journey = build_journey(view, _derived(view, signals), self.policy, link, self.goal_words)
        analysis = Analysis(potential_issues=issues, journey=journey, outcome=outcome, goals=goals,
                            page_labels=[page_label(step.url, self.policy) for step in journey])
        analysis.key_insights = self.key_insights(view, analysis)
        return analysis

    # ------------------------------------------------------------------ key insights: the story
    def key_insights(self, view: SessionView, analysis: Analysis) -> list[str]:
        # Each page's label and kind, once: the purpose, the story and the pages all say them.
        labels = analysis.labels(self.policy)
        kinds = [page_type(step.url) for step in analysis.journey]
        insights = [self._purpose(analysis, kinds)]
        story = self._story(analysis, labels, kinds)
        if story:
            insights.append(story)
        activity = gather_activity(view.events, self.policy)
        insights += self._shopping_insights(activity)
        pages = _unique(labels)
        if analysis.journey:
            views = plural(len(analysis.journey), "page")
            distinct = f" ({len(pages)} different)" if len(pages) != len(analysis.journey) else ""
            insights.append(f"Viewed {views}{distinct}: {listing(pages, MAX_LISTED)}")
        if len(analysis.journey) > 1:
            longest = max(range(len(labels)), key=lambda i: analysis.journey[i].time_on_page_ms)
            time_on_page = analysis.journey[longest].time_on_page_ms
            if time_on_page > 0:
                insights.append(f"Spent the longest on {labels[longest]} ({human_duration(time_on_page)})")
        fields = activity.fields
        if fields:
            insights.append(f"Filled in {plural(len(fields), 'form field')} "
                            f"({listing(fields, 4)}); typed values are not recorded")
        insights.append(self._friction(analysis.potential_issues))
        if len(view.events) < view.total_events:
            insights.append(f"This summary covers {len(view.events)} of {view.total_events} events "
                            "(as the summary profile selects)")
        return insights

    def _purpose(self, analysis: Analysis, page_kinds: list[Optional[str]]) -> str:
        outcome = analysis.outcome
        goal = next((g.goal for g in analysis.goals if g.goal.name == outcome.goal), None)
        if outcome.status == "converted" and goal is not None:
            return f"Came to {_intent(goal)} and did: {outcome.evidence}"
        if outcome.status == "abandoned" and goal is not None:
            why = f" ({quoted(outcome.reason)})" if outcome.reason else ""
            tries = f" after {plural(outcome.failed_attempts, 'failed attempt')}" if outcome.failed_attempts else ""
            return f"Came to {_intent(goal)} but gave up{tries}{why}"
        kinds = _unique(page_kinds)
        if kinds:
            return f"Browsed without a goal in sight: {listing(kinds, 4)}"
        return "Browsed without a goal in sight"

    @staticmethod
    def _story(analysis: Analysis, labels: list[str], kinds: list[Optional[str]]) -> Optional[str]:
        steps: list[str] = []
        previous_kind = None
        for step, label, page_kind in zip(analysis.journey, labels, kinds):
            kind = page_kind or label
            if kind != previous_kind:
                steps.append(f"went to {kind}" if steps else f"landed on {kind}")
            previous_kind = kind
            steps += [a for a in step.actions if not a.startswith("and ")]
        steps = [s for i, s in enumerate(steps) if i == 0 or s != steps[i - 1]]
        if len(steps) <= 1:
            return None
        shown = steps[:MAX_STORY_STEPS]
        more = len(steps) - len(shown)
        text = "In order: " + ", ".join(shown)
        return text + (f" and {plural(more, 'more action')}" if more else "")

    def _shopping_insights(self, activity: Activity) -> list[str]:
        insights = []
        if activity.search_terms:
            insights.append(f"Searched for {listing([quoted(t) for t in activity.search_terms], 4)}")
        products = activity.products
        if products:
            insights.append(f"Viewed {plural(len(products), 'product')}: "
                            f"{listing([quoted(p) for p in products], 4)}")
        cart_adds = activity.cart_adds
        if cart_adds:
            items = _unique(product_name(e, self.policy) for e in cart_adds)
            named = f": {listing([quoted(i) for i in items], 4)}" if items else ""
            insights.append(f"Added {plural(len(cart_adds), 'item')} to the cart{named}")
        return insights

    @staticmethod
    def _friction(issues: list[PotentialIssue]) -> str:
        if not issues:
            return "No friction detected"
        worst = [f"{i.description} ({i.severity})" for i in issues[:MAX_FRICTION_LISTED]]
        more = len(issues) - len(worst)
        tail = f"; and {plural(more, 'more issue')}" if more else ""
        return f"Friction ({plural(len(issues), 'potential issue')}): " + "; ".join(worst) + tail

    # ------------------------------------------------------------------ text
    def overview(self, view: SessionView, analysis: Analysis) -> str:
        pages = len(analysis.journey)
        where = f"Viewed {plural(pages, 'page')}" if pages else "No page views"
        text = f"{where} in {human_duration(view.duration_ms)}"
        device = device_text(view.context, self.policy)
        if device:
            text += f" on {device}"
        location = location_text(view.context, self.policy)
        if location:
            text += f" from {location}"
        outcome = analysis.outcome
        if outcome.status == "converted":
            text += f". Outcome: {outcome.goal} reached ({outcome.evidence})"
        elif outcome.status == "abandoned":
            text += f". Outcome: {outcome.goal} abandoned ({outcome.evidence})"
        else:
            text += ". Outcome: no goal reached"
        issues = analysis.potential_issues
        if issues:
            blocking = sum(1 for i in issues if i.blocking)
            text += f". {plural(len(issues), 'potential issue')}"
            text += f", {blocking} blocking." if blocking else "."
        else:
            text += ". No potential issues."
        return text

    def render_markdown(self, view: SessionView, analysis: Analysis,
                        comparisons: Optional[list[dict[str, Any]]] = None) -> str:
        """`comparisons`: the summary's (masked) comparisons, when the caller has made them."""
        if comparisons is None:
            comparisons = self.summary_comparisons(view)
        lines = [f"**Overview:** {self.overview(view, analysis)}", "", "**Key insights**"]
        lines += [f"- {i}" for i in analysis.key_insights] or ["- Nothing notable happened."]
        lines += ["", "**Potential issues**"]
        lines += [f"- {md_link(i.description, i.link)} at {clock(i.timestamp - view.started_at)} "
                  f"({i.severity} severity)" for i in analysis.potential_issues] or ["- None detected."]
        # Worse first, each group in its order (a stable sort on "not worse", without a key call each)
        comparisons = ([c for c in comparisons if c.get("worse")]
                       + [c for c in comparisons if not c.get("worse")])
        if comparisons:
            lines += ["", "**Compared with the average experience**"]
            lines += [f"- {c.get('text') or ''}" for c in comparisons[:MAX_LISTED]]
            if len(comparisons) > MAX_LISTED:
                lines.append(f"- and {plural(len(comparisons) - MAX_LISTED, 'more comparison')}")
        if analysis.journey:
            lines += ["", "**Journey**"]
            for number, (step, label) in enumerate(zip(analysis.journey, analysis.labels(self.policy)), start=1):
                head = md_link(label, step.link)
                did = f": {', '.join(step.actions)}" if step.actions else ""
                lines.append(f"{number}. {head} ({human_duration(step.time_on_page_ms)}){did}")
        return "\n".join(lines)

    # ------------------------------------------------------------------ JSON answers
    def facts(self, view: SessionView, analysis: Analysis) -> dict[str, Any]:
        """What the schema filler may use, keyed by the names it looks for."""
        issues = [i.model_dump() for i in analysis.potential_issues]
        journey = [step.model_dump() for step in analysis.journey]
        pages = _unique(analysis.labels(self.policy))
        user = view.context.get("user") or {}
        overview = self.overview(view, analysis)
        return {
            "summary": overview + " " + "; ".join(analysis.key_insights),
            "overview": overview,
            "issues": issues,
            "insights": list(analysis.key_insights),
            "goal": self._goal(view, analysis),
            "final_action": self._final_action(analysis),
            "reason": self._reason(analysis),
            "outcome": analysis.outcome.status,
            "converted": analysis.outcome.status == "converted",
            "sentiment": "frustrated" if any(i["type"] in FRUSTRATION_TYPES or i["blocking"]
                                             for i in issues) else "neutral",
            "pages": pages,
            "journey": journey,
            "help_pages": [p for p in pages if _HELP_PATH.search(p)],
            "user_id": user.get("id") if user else None,
            "location": location_text(view.context, self.policy),
            "device": device_text(view.context, self.policy),
            "duration_ms": view.duration_ms,
            "session_id": view.session_id,
        }

    def _goal(self, view: SessionView, analysis: Analysis) -> str:
        outcome = analysis.outcome
        goal = next((g.goal for g in analysis.goals if g.goal.name == outcome.goal), None)
        if goal is not None:
            return f"{_intent(goal)[0].upper()}{_intent(goal)[1:]}"
        terms = _unique(search_term(e, self.policy) for e in view.events if is_search(e, self.policy))
        if terms:
            return f"Find something by searching for {quoted(terms[0])}"
        if any(product_viewed(e, self.policy) for e in view.events):
            return "Browse products"
        pages = analysis.labels(self.policy)
        if any(_HELP_PATH.search(p) for p in pages):
            return "Get help"
        if any(e.get("type") == "input-change" for e in view.events):
            return "Fill in a form"
        return f"Browse the site, starting at {pages[0]}" if pages else "Unknown"

    def _final_action(self, analysis: Analysis) -> str:
        if not analysis.journey:
            return "No page views"
        last = analysis.journey[-1]
        actions = [a for a in last.actions if not a.startswith("and ")]
        did = f" after they {actions[-1]}" if actions else ""
        return f"Left from {analysis.labels(self.policy)[-1]}{did}"

    @staticmethod
    def _reason(analysis: Analysis) -> str:
        outcome = analysis.outcome
        if outcome.status == "converted":
            return f"Reached the {outcome.goal} goal"
        blocking = [i for i in analysis.potential_issues if i.blocking and i.type != "abandonment"]
        if blocking:
            return f"Possibly gave up after: {blocking[0].description}"
        if outcome.status == "abandoned":
            return f"Left without reaching the {outcome.goal} goal; no error or frustration was recorded"
        return "The visit ended without any sign of trouble"

    # ------------------------------------------------------------------ entry point
    def summary_user(self, view: SessionView) -> Optional[dict[str, Any]]:
        user = view.context.get("user")
        if not user:
            return None
        return {"id": user.get("id"), "email": self.policy.display_email(user.get("email"))}

    def summary_comparisons(self, view: SessionView) -> list[dict[str, Any]]:
        """The session's comparisons with their texts masked, for the summary (which validates
        them) and its markdown. The closing stage writes each text from figures of its own and
        the page's path (`display_path` of its URL): when that path holds nothing to mask (known
        once per URL: URLs repeat, texts with their figures do not), neither does the text, and
        the comparison is passed on as it is. Any other text is masked whole."""
        clean_pages = self.policy.memo("comparison-pages")
        masked = []
        for comparison in view.comparisons:
            url, text = comparison.get("url"), comparison.get("text")
            page = clean_pages.get(url)
            if page is None:
                page = clean_pages[url] = self._clean_page(url)
            if page and type(text) is str and page in text:
                masked.append(comparison)
            elif isinstance(text, str):
                masked.append({**comparison, "text": self.policy.text_once(text)})
            else:
                masked.append(comparison)  # not a text: the summary's validation says so
        return masked

    def _clean_page(self, url: Any) -> str:
        """The page's path as comparison texts show it, or "" when it holds something to mask."""
        if not isinstance(url, str):
            return ""
        page = display_path(url)
        return page if self.policy.text_once(page) == page else ""

    def summarize(self, session: dict[str, Any], profile: SummaryProfile, *, generated_at: int) -> Summary:
        view = build_view(session, profile)
        analysis = self.analyze(view)
        comparisons = self.summary_comparisons(view)
        base = dict(
            idempotency_key=idempotency_key(view.window_id, profile),
            session_id=view.session_id, window_id=view.window_id, part=view.part,
            user=self.summary_user(view), profile_id=profile.id, summarizer="builtin", model=None,
            generated_at=int(generated_at), started_at=int(session["started_at"]),
            ended_at=int(session["ended_at"]), key_insights=analysis.key_insights,
            potential_issues=analysis.potential_issues, journey=analysis.journey,
            outcome=analysis.outcome,
            comparisons=comparisons,
        )
        if profile.llm.output_schema is None:
            return Summary(status="READY", summary=self.render_markdown(view, analysis, comparisons), **base)
        try:
            answer = fill_schema(profile.llm.output_schema, self.facts(view, analysis))
        except ValueError as exc:
            return Summary(status="FAILED", summary="", error=str(exc), **base)
        return Summary(status="READY", summary=json.dumps(answer, ensure_ascii=False), **base)

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
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional

from replaylens.schemas.profiles import SummaryProfile
from replaylens.schemas.sessions import Comparison
from replaylens.schemas.summaries import JourneyStep, Outcome, PotentialIssue, Summary
from replaylens.sinks import detect
from replaylens.sinks.detect import DEFAULT_CONVERTED_EVENTS, human_duration, page_label, quoted
from replaylens.sinks.links import LinkSettings, md_link
from replaylens.sinks.profile_view import SessionView, build_view
from replaylens.sinks.schema_fill import fill_schema
from replaylens.config.privacy import mask_email, mask_text

MAX_LISTED = 6
_HELP_PATH = re.compile(r"help|support|faq|docs?|documentation|contact|knowledge|kb\b|guide", re.I)


@dataclass
class Analysis:
    key_insights: list[str] = field(default_factory=list)
    potential_issues: list[PotentialIssue] = field(default_factory=list)
    journey: list[JourneyStep] = field(default_factory=list)
    outcome: Outcome = field(default_factory=lambda: Outcome(status="neutral"))


def profile_fingerprint(profile: SummaryProfile) -> str:
    """A hash of everything in the profile: edit the profile and summaries get new keys."""
    canonical = json.dumps(profile.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def idempotency_key(window_id: str, profile: SummaryProfile) -> str:
    """Same closed window + same profile content -> same key (re-deliveries dedupe)."""
    material = f"{window_id}\x1f{profile.id}\x1f{profile_fingerprint(profile)}"
    return hashlib.sha256(material.encode()).hexdigest()[:32]


def _listing(items: list[str], limit: int = MAX_LISTED) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def _unique(items: Iterable[Optional[str]]) -> list[str]:
    seen: list[str] = []
    for item in items:
        if item and item not in seen:
            seen.append(item)
    return seen


def _plural(count: int, word: str, plural: Optional[str] = None) -> str:
    return f"{count} {word if count == 1 else (plural or word + 's')}"


def device_text(context: dict[str, Any]) -> Optional[str]:
    device = context.get("device") or {}
    kind = device.get("type")
    details = " on ".join(str(d) for d in (device.get("browser"), device.get("os")) if d)
    if not kind and not details:
        return None
    text = f"{kind} ({details})" if kind and details else (kind or details)
    return mask_text(str(text))


def location_text(context: dict[str, Any]) -> Optional[str]:
    location = context.get("location") or {}
    parts = [location.get(k) for k in ("city", "region", "country") if location.get(k)]
    return mask_text(", ".join(str(p) for p in parts)) if parts else None


class BuiltinSummarizer:
    name = "builtin"

    def __init__(self, link_template: str, replay_base_url: str,
                 converted_events: Iterable[str] = DEFAULT_CONVERTED_EVENTS,
                 masker_unmask_emails: bool = False,
                 vitals_thresholds: detect.VitalsThresholds = detect.GOOD_VITALS) -> None:
        self.links = LinkSettings(link_template, replay_base_url)
        self.converted_events = tuple(converted_events)
        self.unmask_emails = masker_unmask_emails
        self.vitals = vitals_thresholds

    @classmethod
    def from_settings(cls, settings) -> "BuiltinSummarizer":
        vitals = detect.POOR_VITALS if settings.summary_slow_page == "poor" else detect.GOOD_VITALS
        return cls(settings.link_template, settings.replay_base_url,
                   converted_events=settings.summary_converted_events,
                   masker_unmask_emails=settings.privacy_unmask_emails, vitals_thresholds=vitals)

    # ------------------------------------------------------------------ analysis
    def analyze(self, view: SessionView) -> Analysis:
        issues = detect.detect_issues(view, self.links, self.converted_events, self.vitals)
        outcome = detect.detect_outcome(view, self.converted_events)
        journey = detect.build_journey(view, self.links)
        return Analysis(key_insights=self.key_insights(view, issues, outcome, journey),
                        potential_issues=issues, journey=journey, outcome=outcome)

    def key_insights(self, view: SessionView, issues: list[PotentialIssue], outcome: Outcome,
                     journey: list[JourneyStep]) -> list[str]:
        insights: list[str] = []
        pages = _unique(page_label(step.url) for step in journey)
        if pages:
            insights.append(f"Visited {_plural(len(pages), 'page')}: {_listing(pages)}")
        insights += self._shopping_insights(view, outcome)
        if len(journey) > 1:
            longest = max(journey, key=lambda s: s.time_on_page_ms)
            if longest.time_on_page_ms > 0:
                insights.append(f"Spent the longest on {page_label(longest.url)} "
                                f"({human_duration(longest.time_on_page_ms)})")
        fields = _unique(detect.target_label(e) for e in view.events
                         if e.get("type") == "input-change" and not detect.is_search(e))
        if fields:
            insights.append(f"Filled in {_plural(len(fields), 'form field')}: {_listing(fields, 4)}")
        insights += self._trouble_insights(issues)
        if len(view.events) < view.total_events:
            insights.append(f"This summary covers {len(view.events)} of {view.total_events} events "
                            "(as the summary profile selects)")
        return insights

    def _shopping_insights(self, view: SessionView, outcome: Outcome) -> list[str]:
        insights = []
        searches = [e for e in view.events if detect.is_search(e)]
        terms = _unique(detect.search_term(e) for e in searches)
        if terms:
            insights.append(f"Searched for {_listing([quoted(t) for t in terms], 4)}")
        elif searches:
            insights.append(f"Searched {_plural(len(searches), 'time')}")
        products = detect.product_views(view.events)
        if products:
            insights.append(f"Viewed {_plural(len(products), 'product')}: "
                            f"{_listing([quoted(p) for p in products], 4)}")
        cart_adds = [e for e in view.events if detect.is_custom(e, detect._CART_NAMES)
                     and detect._norm(e.get("name")) != "cartviewed"]
        if cart_adds:
            items = _unique(detect.product_name(e) for e in cart_adds)
            named = f": {_listing([quoted(i) for i in items], 4)}" if items else ""
            insights.append(f"Added {_plural(len(cart_adds), 'item')} to the cart{named}")
        stages = detect.funnel(view, self.converted_events)
        if stages.checkout_event is not None:
            insights.append("Started checkout")
        if outcome.status == "converted":
            insights.append(f"Completed an order ({outcome.evidence})")
        return insights

    @staticmethod
    def _trouble_insights(issues: list[PotentialIssue]) -> list[str]:
        counts = Counter(i.type for i in issues)
        frustration = [(counts[k], k.replace("-", " ")) for k in
                       ("rage-click", "dead-click", "error-click", "mouse-thrash") if counts[k]]
        insights = []
        if frustration:
            insights.append("Showed frustration: " + ", ".join(_plural(n, w) for n, w in frustration))
        if counts["error"]:
            insights.append(f"Ran into {_plural(counts['error'], 'distinct error')}")
        return insights

    # ------------------------------------------------------------------ text
    def overview(self, view: SessionView, analysis: Analysis) -> str:
        pages = len(analysis.journey)
        where = f"Visited {_plural(pages, 'page')}" if pages else "No page views"
        text = f"{where} in {human_duration(view.duration_ms)}"
        device = device_text(view.context)
        if device:
            text += f" on {device}"
        location = location_text(view.context)
        if location:
            text += f" from {location}"
        outcome = analysis.outcome
        ending = {"converted": "converted", "abandoned": "abandoned", "neutral": "no conversion"}[outcome.status]
        text += f". Outcome: {ending}"
        if outcome.status == "abandoned" and outcome.evidence:
            text += f" ({outcome.evidence})"
        issues = len(analysis.potential_issues)
        text += f". {_plural(issues, 'potential issue')}." if issues else ". No potential issues."
        return text

    def render_markdown(self, view: SessionView, analysis: Analysis) -> str:
        lines = [f"**Overview:** {self.overview(view, analysis)}", "", "**Key insights**"]
        lines += [f"- {i}" for i in analysis.key_insights] or ["- Nothing notable happened."]
        lines += ["", "**Potential issues**"]
        lines += [f"- {md_link(i.description, i.link)} at {detect.clock(i.timestamp - view.started_at)}"
                  for i in analysis.potential_issues] or ["- None detected."]
        comparisons = sorted(view.comparisons, key=lambda c: not c.get("worse"))
        if comparisons:
            lines += ["", "**Compared with the average experience**"]
            lines += [f"- {mask_text(c.get('text') or '')}" for c in comparisons[:MAX_LISTED]]
        if analysis.journey:
            lines += ["", "**Journey**"]
            for number, step in enumerate(analysis.journey, start=1):
                head = md_link(page_label(step.url), step.link)
                did = f": {', '.join(step.actions)}" if step.actions else ""
                lines.append(f"{number}. {head} ({human_duration(step.time_on_page_ms)}){did}")
        return "\n".join(lines)

    # ------------------------------------------------------------------ JSON answers
    def facts(self, view: SessionView, analysis: Analysis) -> dict[str, Any]:
        """What the schema filler may use, keyed by the names it looks for."""
        issues = [{**i.model_dump(), "severity": _severity(i.type)} for i in analysis.potential_issues]
        journey = [step.model_dump() for step in analysis.journey]
        pages = _unique(page_label(step.url) for step in analysis.journey)
        user = view.context.get("user") or {}
        return {
            "summary": self.overview(view, analysis) + " " + "; ".join(analysis.key_insights),
            "overview": self.overview(view, analysis),
            "issues": issues,
            "insights": list(analysis.key_insights),
            "goal": self._goal(view, analysis),
            "final_action": self._final_action(analysis),
            "reason": self._reason(analysis),
            "outcome": analysis.outcome.status,
            "converted": analysis.outcome.status == "converted",
            "sentiment": "frustrated" if any(i["type"] in ("rage-click", "dead-click", "error-click",
                                                           "mouse-thrash") for i in issues) else "neutral",
            "pages": pages,
            "journey": journey,
            "help_pages": [p for p in pages if _HELP_PATH.search(p)],
            "user_id": user.get("id") if user else None,
            "location": location_text(view.context),
            "device": device_text(view.context),
            "duration_ms": view.duration_ms,
            "session_id": view.session_id,
        }

    @staticmethod
    def _goal(view: SessionView, analysis: Analysis) -> str:
        status = analysis.outcome.status
        if status == "converted":
            return "Complete a purchase"
        if status == "abandoned":
            return "Buy a product (got as far as the cart or checkout)"
        terms = _unique(detect.search_term(e) for e in view.events if detect.is_search(e))
        if terms:
            return f"Find something by searching for {quoted(terms[0])}"
        if any(detect.product_viewed(e) for e in view.events):
            return "Browse products"
        pages = [page_label(s.url) for s in analysis.journey]
        if any(_HELP_PATH.search(p) for p in pages):
            return "Get help"
        if any(e.get("type") == "input-change" for e in view.events):
            return "Fill in a form"
        return f"Browse the site, starting at {pages[0]}" if pages else "Unknown"

    @staticmethod
    def _final_action(analysis: Analysis) -> str:
        if not analysis.journey:
            return "No page views"
        last = analysis.journey[-1]
        did = f" after they {last.actions[-1]}" if last.actions else ""
        return f"Left from {page_label(last.url)}{did}"

    @staticmethod
    def _reason(analysis: Analysis) -> str:
        if analysis.outcome.status == "converted":
            return "Completed the purchase"
        blocking = [i for i in analysis.potential_issues if i.type != "abandonment"]
        if blocking:
            return f"Possibly gave up after: {blocking[-1].description}"
        if analysis.outcome.status == "abandoned":
            return "Left the cart or checkout without ordering; no error or frustration was recorded"
        return "The visit ended without any sign of trouble"

    # ------------------------------------------------------------------ entry point
    def summary_user(self, view: SessionView) -> Optional[dict[str, Any]]:
        user = view.context.get("user")
        if not user:
            return None
        email = user.get("email")
        if email and not self.unmask_emails:
            email = mask_email(email)
        return {"id": user.get("id"), "email": email}

    def summarize(self, session: dict[str, Any], profile: SummaryProfile, *, generated_at: int) -> Summary:
        view = build_view(session, profile)
        analysis = self.analyze(view)
        base = dict(
            idempotency_key=idempotency_key(view.window_id, profile),
            session_id=view.session_id, window_id=view.window_id, part=view.part,
            user=self.summary_user(view), profile_id=profile.id, summarizer="builtin", model=None,
            generated_at=int(generated_at), started_at=int(session["started_at"]),
            ended_at=int(session["ended_at"]), key_insights=analysis.key_insights,
            potential_issues=analysis.potential_issues, journey=analysis.journey,
            outcome=analysis.outcome,
            comparisons=[Comparison.model_validate(c) for c in view.comparisons],
        )
        if profile.llm.output_schema is None:
            return Summary(status="READY", summary=self.render_markdown(view, analysis), **base)
        try:
            answer = fill_schema(profile.llm.output_schema, self.facts(view, analysis))
        except ValueError as exc:
            return Summary(status="FAILED", summary="", error=str(exc), **base)
        return Summary(status="READY", summary=json.dumps(answer, ensure_ascii=False), **base)


def _severity(issue_type: str) -> str:
    if issue_type in ("error", "error-click", "abandonment"):
        return "high"
    if issue_type in ("rage-click", "form-trouble", "slow-page"):
        return "medium"
    return "low"

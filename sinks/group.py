"""Group summaries across up to 100 closed sessions, as Heap's group summaries (pure).

A group summary has the session count, the common friction points (issue type + page,
with counts and up to three example links), one cross-session highlight paragraph with
links, and a per-issue list (text, pageURL, userIdHashed, sessionId, eventId) only when
the group has 25 sessions or fewer. Like Heap, there is no journey section.

Each input session is a closed-session dict; it may carry its already published
`summary` (a Summary or its dict) under the key "summary", whose issues are then used
instead of re-analyzing the session.
"""
from __future__ import annotations

import re
from collections import Counter, defaultdict
from typing import Any, Optional
from urllib.parse import urlsplit

from pydantic import BaseModel, Field

from replaylens.schemas.profiles import DEFAULT_PROFILE
from replaylens.schemas.summaries import IssueType, PotentialIssue, Summary
from replaylens.sinks.builtin import BuiltinSummarizer
from replaylens.config.privacy import PrivacyPolicy, hash_id
from replaylens.config.wording import plural
from replaylens.sinks.describe import page_label
from replaylens.sinks.links import md_link
from replaylens.sinks.profile_view import build_view

MAX_GROUP_SESSIONS = 100
ISSUE_LIST_MAX_SESSIONS = 25
EXAMPLES_PER_FRICTION = 3
_ID_SEGMENT = re.compile(r"^(\d+|[0-9a-f]{8,}|[0-9a-f]{8}-[0-9a-f-]{27,})$", re.I)
_ISSUE_WORDS = {
    "error": "errors", "rage-click": "rage clicks", "dead-click": "dead clicks",
    "error-click": "error clicks", "mouse-thrash": "mouse thrashing", "slow-page": "slow loading",
    "abandonment": "abandoned carts/checkouts", "form-trouble": "form trouble",
}


class GroupFilter(BaseModel):
    start_ms: Optional[int] = Field(default=None, description="Sessions active at or after this time")
    end_ms: Optional[int] = Field(default=None, description="Sessions active at or before this time")
    url: Optional[str] = Field(default=None, description="A URL substring, or a normalized URL")
    user_id: Optional[str] = None
    user_email: Optional[str] = Field(default=None, description="Sessions of the user with this email: matched "
                                      "through its keyed hash (the address itself is never stored)")
    issue_type: Optional[IssueType] = None
    limit: int = Field(default=MAX_GROUP_SESSIONS, ge=1, le=MAX_GROUP_SESSIONS)


SEVERITY_WEIGHT = {"high": 3, "medium": 2, "low": 1}


class FrictionPoint(BaseModel):
    issue_type: str
    url: str = Field(description="Normalized page URL")
    occurrences: int
    session_count: int
    examples: list[str] = Field(default_factory=list, description="Up to 3 time-coded replay links")
    severity: str = Field(default="medium", description="The worst severity among its issues")
    message: Optional[str] = Field(default=None, description="The error's own message (masked), when one")
    impact: int = Field(default=0, description="Sessions affected × severity weight (high 3, medium 2, low 1): the rank")


class GroupIssue(BaseModel):
    """One issue of one session, with the fields Heap lists for group summaries."""

    text: str
    pageURL: Optional[str] = None
    userIdHashed: Optional[str] = None
    sessionId: str
    eventId: Optional[str] = None
    type: str
    timestamp: int
    link: str


class GroupSummary(BaseModel):
    session_count: int
    filter: GroupFilter
    started_at: Optional[int] = None
    ended_at: Optional[int] = None
    outcomes: dict[str, int] = Field(default_factory=dict)
    friction_points: list[FrictionPoint] = Field(default_factory=list)
    highlights: str = Field(description="One markdown paragraph with links")
    issues: Optional[list[GroupIssue]] = Field(
        default=None, description=f"Only when the group has ≤ {ISSUE_LIST_MAX_SESSIONS} sessions")
    summary: str = Field(description="The whole group summary as markdown")


def normalize_url(url: Optional[str]) -> str:
    """host + path without query, fragment, trailing slash; id-like segments become :id."""
    if not url:
        return ""
    parts = urlsplit(url if "//" in url or url.startswith("/") else f"//{url}")
    segments = [":id" if _ID_SEGMENT.match(s) else s for s in parts.path.split("/") if s]
    return f"{parts.netloc.lower()}/{'/'.join(segments)}"


def _url_matches(session: dict[str, Any], wanted: str) -> bool:
    urls = [p.get("url") for p in session.get("pages") or ()]
    urls += [e.get("url") for e in session.get("events") or () if e.get("type") == "navigate"]
    normalized = normalize_url(wanted)
    return any(u and (wanted in u or normalize_url(u) == normalized
                      or normalize_url(u).endswith(normalized.lstrip("/"))) for u in urls)


def _user(session: dict[str, Any]) -> dict[str, Any]:
    return ((session.get("context") or {}).get("user")) or {}


def _issues_of(session: dict[str, Any], summarizer: BuiltinSummarizer) -> tuple[list[PotentialIssue], str]:
    """The session's issues and outcome: from its summary when given, else analyzed now."""
    summary = session.get("summary")
    if isinstance(summary, dict):
        summary = Summary.model_validate(summary)
    if isinstance(summary, Summary):
        return list(summary.potential_issues), summary.outcome.status
    analysis = summarizer.analyze(build_view(session, DEFAULT_PROFILE))
    return analysis.potential_issues, analysis.outcome.status


def select_sessions(sessions: list[dict[str, Any]], filt: GroupFilter, summarizer: BuiltinSummarizer
                    ) -> list[tuple[dict[str, Any], list[PotentialIssue], str]]:
    """The most recent sessions matching the filter (at most filt.limit), with their issues."""
    chosen = []
    for session in sessions:
        if filt.start_ms is not None and session["ended_at"] < filt.start_ms:
            continue
        if filt.end_ms is not None and session["started_at"] > filt.end_ms:
            continue
        if filt.user_id is not None and _user(session).get("id") != filt.user_id:
            continue
        if filt.user_email is not None and _user(session).get("email") not in (
                summarizer.policy.identity_key(filt.user_email), filt.user_email):
            continue
        if filt.url is not None and not _url_matches(session, filt.url):
            continue
        issues, outcome = _issues_of(session, summarizer)
        if filt.issue_type is not None and not any(i.type == filt.issue_type for i in issues):
            continue
        chosen.append((session, issues, outcome))
    chosen.sort(key=lambda item: item[0]["started_at"], reverse=True)
    return chosen[: filt.limit]


def _error_words(issue: PotentialIssue) -> Optional[str]:
    """What names the error across sessions: its message, else the failed request."""
    if issue.type != "error":
        return None
    if issue.message:
        return issue.message
    match = re.search(r"(API error: [A-Z]* ?\S+ (returned \d+|failed without a response)|JavaScript error)",
                      issue.description)
    return match.group(1) if match else None


def friction_points(chosen: list[tuple[dict[str, Any], list[PotentialIssue], str]]) -> list[FrictionPoint]:
    occurrences: Counter[tuple[str, str, Optional[str]]] = Counter()
    sessions: dict[tuple[str, str, Optional[str]], set[str]] = defaultdict(set)
    examples: dict[tuple[str, str, Optional[str]], list[str]] = defaultdict(list)
    worst: dict[tuple[str, str, Optional[str]], str] = {}
    for session, issues, _ in chosen:
        for issue in issues:
            key = (issue.type, normalize_url(issue.url), _error_words(issue))
            occurrences[key] += 1
            if session["window_id"] not in sessions[key] and len(examples[key]) < EXAMPLES_PER_FRICTION:
                examples[key].append(issue.link)
            sessions[key].add(session["window_id"])
            if SEVERITY_WEIGHT[issue.severity] > SEVERITY_WEIGHT.get(worst.get(key, "low"), 0) or key not in worst:
                worst[key] = issue.severity
    points = [FrictionPoint(issue_type=kind, url=url, occurrences=occurrences[(kind, url, msg)],
                            session_count=len(sessions[(kind, url, msg)]),
                            examples=examples[(kind, url, msg)], severity=worst[(kind, url, msg)],
                            message=msg,
                            impact=len(sessions[(kind, url, msg)]) * SEVERITY_WEIGHT[worst[(kind, url, msg)]])
              for kind, url, msg in occurrences]
    # What hurts most first; causes before the abandonment they may explain, when equal.
    points.sort(key=lambda p: (-p.impact, -p.occurrences, p.issue_type == "abandonment",
                               p.issue_type, p.url))
    return points


def _hosts(points: list[FrictionPoint]) -> set[str]:
    return {p.url.split("/", 1)[0] for p in points if p.url}


def _where(url: str, policy: PrivacyPolicy, with_host: bool = False) -> str:
    if not url:
        return "an unknown page"
    path = page_label("//" + url, policy)
    return f"{url.split('/', 1)[0]}{path}" if with_host else path


def _point_words(point: FrictionPoint, policy: PrivacyPolicy, with_host: bool) -> str:
    what = _ISSUE_WORDS.get(point.issue_type, point.issue_type)
    if point.message:
        what = f"{what} ({'“' + point.message + '”' if not point.message.startswith(('API error', 'JavaScript')) else point.message})"
    return f"{what} on {_where(point.url, policy, with_host)}"


def _within(point: FrictionPoint, filt: GroupFilter) -> bool:
    return filt.url is None or not point.url or normalize_url(filt.url).lstrip("/") in point.url \
        or filt.url in point.url


def highlight_paragraph(count: int, outcomes: Counter[str], points: list[FrictionPoint],
                        policy: PrivacyPolicy, filt: Optional[GroupFilter] = None) -> str:
    if count == 0:
        return "No sessions match this filter."
    parts = [f"{outcomes[s]} {s}" for s in ("converted", "abandoned", "neutral") if outcomes[s]]
    text = f"Across {plural(count, 'session')} ({', '.join(parts)})"
    if not points:
        return text + ", no potential issues were detected."
    with_host = len(_hosts(points)) > 1
    # The headline stays within the filter: a /checkout group leads with a /checkout finding.
    ordered = [p for p in points if filt is None or _within(p, filt)] or points
    ordered += [p for p in points if p not in ordered]
    mentions = []
    for point in ordered[:3]:
        label = _point_words(point, policy, with_host)
        linked = md_link(label, point.examples[0]) if point.examples else label
        mentions.append(f"{linked} ({point.session_count} of {plural(count, 'session')}, {point.severity} severity)")
    text += f", what hurt most was {mentions[0]}"
    if len(mentions) > 1:
        text += ", followed by " + " and ".join(mentions[1:])
    return text + "."


def _group_issues(chosen: list[tuple[dict[str, Any], list[PotentialIssue], str]], salt: str,
                  policy: PrivacyPolicy) -> list[GroupIssue]:
    rows = []
    for session, issues, _ in chosen:
        user = _user(session)
        hashed = hash_id(user.get("id") or user.get("email"), salt) if user else None
        for issue in issues:
            rows.append(GroupIssue(
                text=policy.text(issue.description) or "", pageURL=policy.url(issue.url),
                userIdHashed=hashed, sessionId=session["session_id"], eventId=issue.event_id,
                type=issue.type, timestamp=issue.timestamp, link=issue.link))
    rows.sort(key=lambda r: (r.timestamp, r.sessionId))
    return rows


def _markdown(summary_count: int, highlights: str, points: list[FrictionPoint],
              issues: Optional[list[GroupIssue]], policy: PrivacyPolicy) -> str:
    lines = [f"**{plural(summary_count, 'session')}**", "", highlights]
    with_host = len(_hosts(points)) > 1
    if points:
        lines += ["", "**Common friction points**"]
        for point in points[:10]:
            links = ", ".join(md_link(f"example {n}", url) for n, url in enumerate(point.examples, 1))
            lines.append(f"- {_point_words(point, policy, with_host)}: "
                         f"{plural(point.session_count, 'session')}, {plural(point.occurrences, 'time')}, "
                         f"{point.severity} severity"
                         + (f" ({links})" if links else ""))
    if issues is not None:
        lines += ["", "**Potential issues**"]
        lines += [f"- {md_link(i.text, i.link)}" for i in issues] or ["- None detected."]
    return "\n".join(lines)


def _shown(filt: GroupFilter, policy: PrivacyPolicy) -> GroupFilter:
    """The filter as the output repeats it: an email only as its keyed hash."""
    if filt.user_email is None:
        return filt
    return filt.model_copy(update={"user_email": policy.identity_key(filt.user_email)})


def summarize_group(sessions: list[dict[str, Any]], filt: GroupFilter, summarizer: BuiltinSummarizer,
                    hash_salt: str) -> GroupSummary:
    chosen = select_sessions(sessions, filt, summarizer)
    outcomes: Counter[str] = Counter(outcome for _, _, outcome in chosen)
    points = friction_points(chosen)
    policy = summarizer.policy
    highlights = highlight_paragraph(len(chosen), outcomes, points, policy, filt)
    issues = _group_issues(chosen, hash_salt, policy) if len(chosen) <= ISSUE_LIST_MAX_SESSIONS else None
    return GroupSummary(
        session_count=len(chosen), filter=_shown(filt, policy),
        started_at=min((s["started_at"] for s, _, _ in chosen), default=None),
        ended_at=max((s["ended_at"] for s, _, _ in chosen), default=None),
        outcomes=dict(outcomes), friction_points=points, highlights=highlights, issues=issues,
        summary=_markdown(len(chosen), highlights, points, issues, policy),
    )

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
from replaylens.sinks.detect import page_label
from replaylens.sinks.links import md_link
from replaylens.sinks.profile_view import build_view
from replaylens.config.privacy import hash_id, mask_text

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
    issue_type: Optional[IssueType] = None
    limit: int = Field(default=MAX_GROUP_SESSIONS, ge=1, le=MAX_GROUP_SESSIONS)


class FrictionPoint(BaseModel):
    issue_type: str
    url: str = Field(description="Normalized page URL")
    occurrences: int
    session_count: int
    examples: list[str] = Field(default_factory=list, description="Up to 3 time-coded replay links")


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
        if filt.url is not None and not _url_matches(session, filt.url):
            continue
        issues, outcome = _issues_of(session, summarizer)
        if filt.issue_type is not None and not any(i.type == filt.issue_type for i in issues):
            continue
        chosen.append((session, issues, outcome))
    chosen.sort(key=lambda item: item[0]["started_at"], reverse=True)
    return chosen[: filt.limit]


def friction_points(chosen: list[tuple[dict[str, Any], list[PotentialIssue], str]]) -> list[FrictionPoint]:
    occurrences: Counter[tuple[str, str]] = Counter()
    sessions: dict[tuple[str, str], set[str]] = defaultdict(set)
    examples: dict[tuple[str, str], list[str]] = defaultdict(list)
    for session, issues, _ in chosen:
        for issue in issues:
            key = (issue.type, normalize_url(issue.url))
            occurrences[key] += 1
            if session["window_id"] not in sessions[key] and len(examples[key]) < EXAMPLES_PER_FRICTION:
                examples[key].append(issue.link)
            sessions[key].add(session["window_id"])
    points = [FrictionPoint(issue_type=kind, url=url, occurrences=occurrences[(kind, url)],
                            session_count=len(sessions[(kind, url)]), examples=examples[(kind, url)])
              for kind, url in occurrences]
    # Causes before the abandonment they may explain, when equally common.
    points.sort(key=lambda p: (-p.session_count, -p.occurrences, p.issue_type == "abandonment",
                               p.issue_type, p.url))
    return points


def _where(url: str) -> str:
    return page_label("//" + url) if url else "an unknown page"


def highlight_paragraph(count: int, outcomes: Counter[str], points: list[FrictionPoint]) -> str:
    if count == 0:
        return "No sessions match this filter."
    parts = [f"{outcomes[s]} {s}" for s in ("converted", "abandoned", "neutral") if outcomes[s]]
    text = f"Across {count} session{'s' if count != 1 else ''} ({', '.join(parts)})"
    if not points:
        return text + ", no potential issues were detected."
    mentions = []
    for point in points[:3]:
        label = f"{_ISSUE_WORDS.get(point.issue_type, point.issue_type)} on {_where(point.url)}"
        linked = md_link(label, point.examples[0]) if point.examples else label
        share = f"{point.session_count} of {count} sessions"
        mentions.append(f"{linked} ({share})")
    text += f", the most common friction was {mentions[0]}"
    if len(mentions) > 1:
        text += ", followed by " + " and ".join(mentions[1:])
    return text + "."


def _group_issues(chosen: list[tuple[dict[str, Any], list[PotentialIssue], str]], salt: str) -> list[GroupIssue]:
    rows = []
    for session, issues, _ in chosen:
        user = _user(session)
        hashed = hash_id(user.get("id") or user.get("email"), salt) if user else None
        for issue in issues:
            rows.append(GroupIssue(
                text=mask_text(issue.description) or "", pageURL=mask_text(issue.url),
                userIdHashed=hashed, sessionId=session["session_id"], eventId=issue.event_id,
                type=issue.type, timestamp=issue.timestamp, link=issue.link))
    rows.sort(key=lambda r: (r.timestamp, r.sessionId))
    return rows


def _markdown(summary_count: int, highlights: str, points: list[FrictionPoint],
              issues: Optional[list[GroupIssue]]) -> str:
    lines = [f"**{summary_count} sessions**", "", highlights]
    if points:
        lines += ["", "**Common friction points**"]
        for point in points[:10]:
            links = ", ".join(md_link(f"example {n}", url) for n, url in enumerate(point.examples, 1))
            lines.append(f"- {_ISSUE_WORDS.get(point.issue_type, point.issue_type)} on {_where(point.url)}: "
                         f"{point.session_count} sessions, {point.occurrences} times"
                         + (f" ({links})" if links else ""))
    if issues is not None:
        lines += ["", "**Potential issues**"]
        lines += [f"- {md_link(i.text, i.link)}" for i in issues] or ["- None detected."]
    return "\n".join(lines)


def summarize_group(sessions: list[dict[str, Any]], filt: GroupFilter, summarizer: BuiltinSummarizer,
                    hash_salt: str) -> GroupSummary:
    chosen = select_sessions(sessions, filt, summarizer)
    outcomes: Counter[str] = Counter(outcome for _, _, outcome in chosen)
    points = friction_points(chosen)
    highlights = highlight_paragraph(len(chosen), outcomes, points)
    issues = _group_issues(chosen, hash_salt) if len(chosen) <= ISSUE_LIST_MAX_SESSIONS else None
    return GroupSummary(
        session_count=len(chosen), filter=filt,
        started_at=min((s["started_at"] for s, _, _ in chosen), default=None),
        ended_at=max((s["ended_at"] for s, _, _ in chosen), default=None),
        outcomes=dict(outcomes), friction_points=points, highlights=highlights, issues=issues,
        summary=_markdown(len(chosen), highlights, points, issues),
    )

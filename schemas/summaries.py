"""Summaries: what the summarizer sink publishes to the summaries topic."""
from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import BaseModel, Field

from replaylens.schemas.sessions import Comparison

IssueType = Literal[
    "error", "rage-click", "dead-click", "error-click", "mouse-thrash",
    "slow-page", "abandonment", "form-trouble",
]


Severity = Literal["high", "medium", "low"]


class Evidence(BaseModel):
    """One moment of an issue (the click, the failed request, a retry, a rage click)."""

    what: str
    timestamp: int
    link: str = Field(description="Time-coded replay link")
    event_id: Optional[str] = None


class PotentialIssue(BaseModel):
    """One incident: the signals of one failure grouped, with its evidence and severity."""

    type: IssueType
    description: str
    url: Optional[str] = None
    timestamp: int
    link: str = Field(description="Time-coded replay link")
    event_id: Optional[str] = None
    severity: Severity = Field(default="medium", description="high: blocked a goal; low: the user got past it")
    blocking: bool = Field(default=False, description="The user did not reach a goal after it")
    message: Optional[str] = Field(default=None, description="The error's own message, masked")
    attempts: int = Field(default=1, description="Times the user tried and it failed")
    goal: Optional[str] = Field(default=None, description="The goal it stood in the way of")
    evidence: list[Evidence] = Field(default_factory=list, description="Each moment, with its link")


class JourneyStep(BaseModel):
    url: str
    entered_at: int
    time_on_page_ms: int
    link: str
    actions: list[str] = Field(default_factory=list)


class Outcome(BaseModel):
    status: Literal["converted", "abandoned", "neutral"] = Field(
        description="converted: a goal was reached; abandoned: one was set out for and not reached")
    evidence: Optional[str] = None
    goal: Optional[str] = Field(default=None, description="The goal reached or abandoned (settings: summary_goals)")
    failed_attempts: int = Field(default=0, description="Failed attempts at the goal before it was reached or abandoned")
    reason: Optional[str] = Field(default=None, description="Why it was abandoned, when an issue explains it")


class Summary(BaseModel):
    idempotency_key: str = Field(description="Same for a re-delivered closed session and profile")
    session_id: str
    window_id: str
    part: int = 1
    user: Optional[dict[str, Any]] = None
    profile_id: str
    status: Literal["READY", "FAILED"]
    summarizer: Literal["builtin", "llm", "builtin-fallback"]
    model: Optional[str] = None
    generated_at: int = Field(description="Epoch milliseconds")
    started_at: int
    ended_at: int
    summary: str = Field(description="Markdown text, or a JSON string when the profile has an output_schema")
    key_insights: list[str] = Field(default_factory=list)
    potential_issues: list[PotentialIssue] = Field(default_factory=list)
    journey: list[JourneyStep] = Field(default_factory=list)
    outcome: Outcome = Field(default_factory=lambda: Outcome(status="neutral"))
    comparisons: list[Comparison] = Field(default_factory=list)
    fallback_reason: Optional[str] = None
    error: Optional[str] = None

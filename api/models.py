"""Request bodies and query parameters, validated strictly (unknown fields are errors)."""
from __future__ import annotations

import re
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, field_validator, model_validator

from replaylens.schemas.summaries import IssueType
from replaylens.sinks.group import MAX_GROUP_SESSIONS

MAX_URL_CHARS = 2048
MAX_ID_CHARS = 256
MAX_COMMENT_CHARS = 2000
MAX_EMAIL_CHARS = 320  # RFC 5321: 64 local + @ + 255 domain
DEFAULT_LIST_LIMIT = 20  # Fullstory's default
MAX_LIST_LIMIT = 100
PROFILE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def check_email(value: Optional[str]) -> Optional[str]:
    if value is not None and not EMAIL.match(value):
        raise ValueError("not an email address")
    return value


class TimeRange(Strict):
    startMs: StrictInt = Field(ge=0, description="Epoch ms, before endMs")
    endMs: StrictInt = Field(ge=0, description="Epoch ms, after startMs")

    @model_validator(mode="after")
    def _ordered(self) -> "TimeRange":
        if self.startMs >= self.endMs:
            raise ValueError("startMs must be smaller than endMs")
        return self


class HighlightsRequest(Strict):
    """LogRocket's highlights request: one of userID or userEmail, and a webhook URL."""

    userID: Optional[StrictStr] = Field(default=None, min_length=1, max_length=MAX_ID_CHARS)
    userEmail: Optional[StrictStr] = Field(default=None, max_length=MAX_EMAIL_CHARS)
    timeRange: Optional[TimeRange] = None
    webhookURL: StrictStr = Field(min_length=1, max_length=MAX_URL_CHARS)

    @field_validator("userEmail")
    @classmethod
    def _email(cls, value: Optional[str]) -> Optional[str]:
        return check_email(value)

    @model_validator(mode="after")
    def _someone(self) -> "HighlightsRequest":
        if self.userID is None and self.userEmail is None:
            raise ValueError("one of userID or userEmail is required")
        return self


class FeedbackRequest(Strict):
    rating: Literal["up", "down"]
    comment: Optional[StrictStr] = Field(default=None, max_length=MAX_COMMENT_CHARS)
    profile_id: StrictStr = Field(default="default", min_length=1, max_length=MAX_ID_CHARS)


class AskRequest(Strict):
    question: StrictStr = Field(min_length=1)


class GroupRequest(Strict):
    """Heap's group filter: time range, URL, user, issue type, up to 100 sessions."""

    start_ms: Optional[StrictInt] = Field(default=None, ge=0)
    end_ms: Optional[StrictInt] = Field(default=None, ge=0)
    url: Optional[StrictStr] = Field(default=None, min_length=1, max_length=MAX_URL_CHARS)
    user_id: Optional[StrictStr] = Field(default=None, min_length=1, max_length=MAX_ID_CHARS)
    issue_type: Optional[IssueType] = None
    limit: StrictInt = Field(default=MAX_GROUP_SESSIONS, ge=1, le=MAX_GROUP_SESSIONS)

    @model_validator(mode="after")
    def _ordered(self) -> "GroupRequest":
        if self.start_ms is not None and self.end_ms is not None and self.start_ms > self.end_ms:
            raise ValueError("start_ms must not be after end_ms")
        return self


class SessionsQuery(Strict):
    uid: Optional[str] = Field(default=None, min_length=1, max_length=MAX_ID_CHARS)
    email: Optional[str] = Field(default=None, max_length=MAX_EMAIL_CHARS)
    limit: int = Field(default=DEFAULT_LIST_LIMIT, ge=1, le=MAX_LIST_LIMIT)

    @field_validator("email")
    @classmethod
    def _email(cls, value: Optional[str]) -> Optional[str]:
        return check_email(value)

    @model_validator(mode="after")
    def _someone(self) -> "SessionsQuery":
        if self.uid is None and self.email is None:
            raise ValueError("one of uid or email is required")
        return self

"""Summary profiles, modelled on Fullstory's visit profile."""
from __future__ import annotations

import json
from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

CONTEXT_ELEMENTS = ("user", "org", "location", "device")


class LlmOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pre_prompt: str = ""
    post_prompt: str = ""
    output_schema: Optional[dict[str, Any]] = Field(
        default=None, description="A JSON Schema, given as an object or as a JSON string"
    )
    temperature: float = Field(default=0.2, ge=0, le=2)
    model: Optional[str] = Field(default=None, description="Overrides the configured model")

    @field_validator("output_schema", mode="before")
    @classmethod
    def _parse_schema(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError as exc:
                raise ValueError(f"output_schema is not valid JSON: {exc}") from None
        return value


class SliceOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: Literal["FIRST", "LAST", "TIMESTAMP"] = "FIRST"
    event_limit: Optional[int] = Field(default=None, gt=0)
    duration_limit_ms: Optional[int] = Field(default=None, gt=0)
    start_timestamp: Optional[int] = None

    @model_validator(mode="after")
    def _timestamp_mode_needs_start(self) -> "SliceOptions":
        if self.mode == "TIMESTAMP" and self.start_timestamp is None:
            raise ValueError("slice mode TIMESTAMP needs start_timestamp")
        return self


class ContextOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    include: Optional[list[Literal["user", "org", "location", "device"]]] = None
    exclude: Optional[list[Literal["user", "org", "location", "device"]]] = None
    exclude_user_context: bool = False
    exclude_org_context: bool = False

    @model_validator(mode="after")
    def _not_both(self) -> "ContextOptions":
        if self.include is not None and self.exclude is not None:
            raise ValueError("context: set include or exclude, not both")
        return self

    def selected(self) -> list[str]:
        chosen = list(self.include) if self.include is not None else list(CONTEXT_ELEMENTS)
        dropped = set(self.exclude or ())
        if self.exclude_user_context:
            dropped.add("user")
        if self.exclude_org_context:
            dropped.add("org")
        return [c for c in chosen if c not in dropped]


class EventFilter(BaseModel):
    """Standard event types and custom event names to keep or drop."""

    model_config = ConfigDict(extra="forbid")

    include_types: Optional[list[str]] = None
    exclude_types: Optional[list[str]] = None

    @model_validator(mode="after")
    def _not_both(self) -> "EventFilter":
        if self.include_types is not None and self.exclude_types is not None:
            raise ValueError(
                "events: set include_types or exclude_types, not both "
                "(they would conflict; Fullstory advises the same)"
            )
        return self


class SummaryProfile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)
    description: str = ""
    streaming: bool = Field(default=True, description="Summarize every closed session with it")
    llm: LlmOptions = Field(default_factory=LlmOptions)
    slice: SliceOptions = Field(default_factory=SliceOptions)
    context: ContextOptions = Field(default_factory=ContextOptions)
    events: EventFilter = Field(default_factory=EventFilter)


DEFAULT_PROFILE = SummaryProfile(
    id="default",
    description="Heap-style summary: key insights, potential issues, journey, outcome",
    llm=LlmOptions(
        pre_prompt=(
            "You are a product analyst. Summarize this web session: what the user did, "
            "where they struggled, and how it ended."
        ),
        post_prompt=(
            "Cite moments by their event id in square brackets, like [e12]. "
            "Only describe what the log shows."
        ),
    ),
)


def profile_from_json(data: Union[str, bytes, dict[str, Any]]) -> SummaryProfile:
    if isinstance(data, (str, bytes)):
        return SummaryProfile.model_validate_json(data)
    return SummaryProfile.model_validate(data)

"""What the dead-letter topic carries: the original bytes, why, and where they came from."""
from __future__ import annotations

import base64
from typing import Literal, Optional

from pydantic import BaseModel, Field

DeadLetterReason = Literal["invalid-json", "invalid-event", "future-timestamp", "late", "invalid-recording",
                           "internal-error", "output-too-large"]


class DeadLetter(BaseModel):
    reason: DeadLetterReason
    error: str = Field(description="Human-readable validation error")
    topic: Optional[str] = None
    partition: Optional[int] = None
    offset: Optional[int] = None
    key: Optional[str] = None
    session_id: Optional[str] = None
    original: Optional[str] = Field(default=None, description="The original message as UTF-8 text")
    original_base64: Optional[str] = Field(default=None, description="The original bytes, when not UTF-8")
    received_at: int = Field(description="Epoch ms when the pipeline rejected it")
    size: Optional[int] = Field(default=None, description="output-too-large: the refused record's size in bytes")
    sha256: Optional[str] = Field(default=None, description="output-too-large: digest of the refused record")


def original_fields(raw: bytes) -> dict[str, Optional[str]]:
    try:
        return {"original": raw.decode("utf-8"), "original_base64": None}
    except UnicodeDecodeError:
        return {"original": None, "original_base64": base64.b64encode(raw).decode("ascii")}

"""What the dead-letter topic carries: the original bytes, why, and where they came from."""
from __future__ import annotations

from typing import Literal, Optional

from pydantic import BaseModel, Field

from replaylens.config.privacy import DEFAULT_POLICY, PrivacyPolicy

DeadLetterReason = Literal["invalid-json", "invalid-event", "future-timestamp", "late", "invalid-recording"]


class DeadLetter(BaseModel):
    reason: DeadLetterReason
    error: str = Field(description="Human-readable validation error")
    topic: Optional[str] = None
    partition: Optional[int] = None
    offset: Optional[int] = None
    key: Optional[str] = None
    session_id: Optional[str] = None
    original: Optional[str] = Field(default=None, description="The original message as text, masked by the privacy policy")
    original_base64: Optional[str] = Field(default=None, description="The raw bytes, unmasked: only with REPLAYLENS_PRIVACY_DEAD_LETTER_KEEP_RAW (sensitive)")
    received_at: int = Field(description="Epoch ms when the pipeline rejected it")


def original_fields(raw: bytes, policy: PrivacyPolicy = DEFAULT_POLICY) -> dict[str, Optional[str]]:
    """The masked text of a rejected message (bytes that are not UTF-8 are replaced), and its raw
    bytes only when the policy keeps them."""
    kept = policy.dead_letter_original(raw)
    return {"original": kept["original"], "original_base64": kept.get("original_base64")}

"""What the dead-letter topic carries: why, where from, and a bounded, masked excerpt of the
original (its size and sha256 identify the whole message, which may be any size)."""
from __future__ import annotations

import hashlib
import re
from typing import Literal, Optional

from pydantic import BaseModel, Field

from replaylens.config.privacy import DEFAULT_POLICY, MASK, PrivacyPolicy

DeadLetterReason = Literal["invalid-json", "invalid-event", "future-timestamp", "late", "invalid-recording",
                           "internal-error", "output-too-large"]

DEFAULT_EXCERPT_BYTES = 4096
# Longest error text and key kept: both can quote the input (a 1 MB key is a valid Kafka key).
MAX_ERROR_CHARS = 2000
MAX_KEY_CHARS = 1024
# A typed value in the (possibly broken) JSON text: masked like a valid event's value.
_TYPED_VALUE = re.compile(r'("value"\s*:\s*")((?:[^"\\]|\\.)*)(")?')


class DeadLetter(BaseModel):
    reason: DeadLetterReason
    error: str = Field(description="Human-readable validation error")
    topic: Optional[str] = None
    partition: Optional[int] = None
    offset: Optional[int] = None
    key: Optional[str] = None
    session_id: Optional[str] = None
    original: Optional[str] = Field(default=None, description="The start of the original message as text "
                                    "(invalid UTF-8 shown as U+FFFD), masked by the privacy policy")
    original_base64: Optional[str] = Field(default=None, description="The same excerpt's raw bytes, unmasked: only "
                                           "with REPLAYLENS_PRIVACY_DEAD_LETTER_KEEP_RAW (sensitive)")
    original_bytes: Optional[int] = Field(default=None, description="Size of the whole original message")
    original_sha256: Optional[str] = Field(default=None, description="sha256 of the whole original message")
    original_truncated: bool = Field(default=False, description="The excerpt is shorter than the original")
    received_at: int = Field(description="Epoch ms when the pipeline rejected it")


def bounded(text: Optional[str], limit: int) -> Optional[str]:
    return text if text is None or len(text) <= limit else text[:limit] + "…"


def original_fields(raw: bytes, policy: PrivacyPolicy = DEFAULT_POLICY,
                    excerpt_bytes: int = DEFAULT_EXCERPT_BYTES) -> dict:
    """A bounded excerpt of a rejected message, masked by the policy (field by field when it is
    JSON; typed values also in JSON cut short), with the whole message's size and digest."""
    excerpt = raw[:excerpt_bytes]
    kept = policy.dead_letter_original(excerpt)
    masked = kept["original"]
    if not policy.unmask_inputs:
        masked = _TYPED_VALUE.sub(lambda m: m.group(1) + MASK + (m.group(3) or ""), masked)
    return {"original": masked, "original_base64": kept.get("original_base64"),
            "original_bytes": len(raw), "original_sha256": hashlib.sha256(raw).hexdigest(),
            "original_truncated": len(raw) > excerpt_bytes}

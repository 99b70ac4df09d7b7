"""What the dead-letter topic carries: why, where from, and a bounded, masked excerpt of the
original (its size and sha256 identify the whole message, which may be any size)."""
from __future__ import annotations

import base64
import hashlib
import re
from typing import Literal, Optional

from pydantic import BaseModel, Field

from replaylens.config.privacy import MASK, mask_text

DeadLetterReason = Literal["invalid-json", "invalid-event", "future-timestamp", "late", "invalid-recording"]

DEFAULT_EXCERPT_BYTES = 4096
# Longest error text and key kept: both can quote the input (a 1 MB key is a valid Kafka key).
MAX_ERROR_CHARS = 2000
MAX_KEY_CHARS = 1024
UTF8_MAX_CHAR_BYTES = 4
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
                                    "(invalid UTF-8 shown as U+FFFD), masked as the privacy settings say")
    original_base64: Optional[str] = Field(default=None, description="The same excerpt's exact bytes, when "
                                           "they are not UTF-8 and masking would change nothing in them")
    original_bytes: Optional[int] = Field(default=None, description="Size of the whole original message")
    original_sha256: Optional[str] = Field(default=None, description="sha256 of the whole original message")
    original_truncated: bool = Field(default=False, description="The excerpt is shorter than the original")
    received_at: int = Field(description="Epoch ms when the pipeline rejected it")


def bounded(text: Optional[str], limit: int) -> Optional[str]:
    return text if text is None or len(text) <= limit else text[:limit] + "…"


def _utf8_excerpt(data: bytes) -> Optional[str]:
    """`data` as text when it is UTF-8, allowing a character cut at the end of an excerpt."""
    for cut in range(UTF8_MAX_CHAR_BYTES):
        try:
            return data[:len(data) - cut].decode("utf-8")
        except UnicodeDecodeError:
            continue
    return None


def original_fields(raw: bytes, excerpt_bytes: int = DEFAULT_EXCERPT_BYTES, unmask_inputs: bool = False,
                    unmask_emails: bool = False) -> dict:
    excerpt = raw[:excerpt_bytes]
    text = _utf8_excerpt(excerpt)
    shown = text if text is not None else excerpt.decode("utf-8", "replace")
    masked = mask_text(shown, unmask_emails=unmask_emails) or shown
    if not unmask_inputs:
        masked = _TYPED_VALUE.sub(lambda m: m.group(1) + MASK + (m.group(3) or ""), masked)
    exact = text is None and masked == shown
    return {"original": masked,
            "original_base64": base64.b64encode(excerpt).decode("ascii") if exact else None,
            "original_bytes": len(raw), "original_sha256": hashlib.sha256(raw).hexdigest(),
            "original_truncated": len(raw) > excerpt_bytes}

"""Masking of personal data before any summarizer, topic consumer or log sees it.

Applied once at ingest (typed input values) and again to any free text that leaves the
pipeline (prompts, summaries, logs). Settings can let named fields through.
"""
from __future__ import annotations

import hashlib
import hmac
import re
from typing import Any, Iterable, Optional

MASK = "[masked]"
EMAIL_MASK = "[email]"
CARD_MASK = "[card]"

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
# 13-19 digits, optionally grouped by spaces or dashes: card-number shaped.
_CARD = re.compile(r"\b(?:\d[ -]?){12,18}\d\b")
_SSN = re.compile(r"\b\d{3}-\d{2}-\d{4}\b")
_PHONE = re.compile(r"(?<!\w)\+?\d[\d ().-]{8,}\d(?!\w)")


def _luhn_ok(digits: str) -> bool:
    total, parity = 0, len(digits) % 2
    for i, ch in enumerate(digits):
        d = ord(ch) - 48
        if i % 2 == parity:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _mask_card(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    return CARD_MASK if 13 <= len(digits) <= 19 and _luhn_ok(digits) else match.group(0)


def mask_text(text: Optional[str], *, unmask_emails: bool = False) -> Optional[str]:
    """Mask emails, card numbers (Luhn-checked), SSNs and phone numbers in free text."""
    if not text:
        return text
    if not unmask_emails and "@" in text:
        text = _EMAIL.sub(EMAIL_MASK, text)
    if any(c.isdigit() for c in text):
        text = _CARD.sub(_mask_card, text)
        text = _SSN.sub(MASK, text)
        text = _PHONE.sub(MASK, text)
    return text


def hash_id(value: Optional[str], salt: str = "replaylens") -> Optional[str]:
    """A stable pseudonym for a user id or email (group summaries refer to users by it)."""
    if value is None:
        return None
    return "u_" + hashlib.sha256(f"{salt}:{value}".encode()).hexdigest()[:16]


class Masker:
    """Masks one decoded event dict in place, as the privacy settings say."""

    __slots__ = ("unmask_inputs", "unmask_emails", "allowed_fields")

    def __init__(self, unmask_inputs: bool = False, unmask_emails: bool = False,
                 allowed_fields: Iterable[str] = ()) -> None:
        self.unmask_inputs = unmask_inputs
        self.unmask_emails = unmask_emails
        self.allowed_fields = frozenset(allowed_fields)

    @classmethod
    def from_settings(cls, settings: Any) -> "Masker":
        return cls(settings.privacy_unmask_inputs, settings.privacy_unmask_emails,
                   settings.privacy_allowed_fields)

    def input_allowed(self, event: dict[str, Any]) -> bool:
        if self.unmask_inputs:
            return True
        target = event.get("target") or {}
        return bool(self.allowed_fields) and target.get("selector") in self.allowed_fields

    def mask_event(self, event: dict[str, Any]) -> dict[str, Any]:
        value = event.get("value")
        if value is not None:
            event["value"] = mask_text(value, unmask_emails=self.unmask_emails) \
                if self.input_allowed(event) else MASK
        target = event.get("target")
        if target and target.get("text"):
            target["text"] = mask_text(target["text"], unmask_emails=self.unmask_emails)
        error = event.get("error")
        if error and error.get("message"):
            error["message"] = mask_text(error["message"], unmask_emails=self.unmask_emails)
        # user.email is identity, not typed content: it stays on the session (lookups by
        # email need it) and is masked where text leaves the pipeline (prompts, summaries).
        return event


def mask_email(email: str) -> str:
    """j***@example.com: keeps the domain for support workflows, hides the person."""
    local, _, domain = email.partition("@")
    return f"{local[:1]}***@{domain}" if domain else EMAIL_MASK


def normalize_email(email: str) -> str:
    """The matchable form of an email: trimmed and lower-cased (as identity providers compare)."""
    return email.strip().lower()


def email_lookup_key(email: Optional[str], secret: str) -> Optional[str]:
    """A keyed hash (HMAC-SHA256) of the normalized email: stored to find a user's sessions by
    email without storing the email; without the secret it cannot be reversed by guessing."""
    if not email or "@" not in email:
        return None
    digest = hmac.new(secret.encode(), normalize_email(email).encode(), hashlib.sha256).hexdigest()
    return "e_" + digest[:32]

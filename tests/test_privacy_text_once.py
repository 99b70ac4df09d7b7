"""PrivacyPolicy.text's digit-run pre-check and text_once mask exactly as the full scans do."""
from __future__ import annotations

import pytest

from replaylens.config import privacy
from replaylens.config.privacy import PrivacyPolicy

SAMPLES = [
    "", "plain words", "LCP 2.0 s vs p75 2.5 s on /", "exit rate is 45% on /cart?page=2",
    "card 4111 1111 1111 1111 here", "card 4111-1111-1111-1111", "4111111111111111", "ssn 123-45-6789",
    "call +1 (555) 123-4567 now", "phone 555.123.4567", "tel 5551234567", "id 123456789 (9 digits)",
    "order 12345 of 2024-01-02", "mail alice@example.com", "alice%40example.com", "bob (at) example (dot) com",
    "a 1 2 3 4 5 6 7 8 9 0 b", "1-2-3-4-5-6", "٤١١١١١١١١١١١١١١١ arabic digits",
]


def full_scan(policy: PrivacyPolicy, text: str) -> str:
    """text() as it was before the pre-check: every pattern whenever a digit is present."""
    masked = text
    if not policy.unmask_emails and privacy._AT_HINT.search(masked):
        masked = privacy._EMAIL.sub(privacy.EMAIL_MASK, masked)
    if privacy._DIGIT.search(masked):
        masked = privacy._CARD.sub(privacy._mask_card, masked)
        masked = privacy._SSN.sub(privacy.MASK, masked)
        masked = privacy._PHONE.sub(privacy.MASK, masked)
    return masked


@pytest.mark.parametrize("unmask_emails", [False, True])
@pytest.mark.parametrize("text", SAMPLES)
def test_text_and_text_once_mask_as_the_full_scans(text, unmask_emails):
    policy = PrivacyPolicy(unmask_emails=unmask_emails)
    assert policy.text(text) == full_scan(policy, text)
    assert policy.text_once(text) == full_scan(policy, text)


def test_samples_do_hold_secrets():
    policy = PrivacyPolicy()
    assert sum(policy.text(t) != t for t in SAMPLES) >= 10


def test_text_once_is_not_remembered():
    policy = PrivacyPolicy()
    policy.text_once("mail alice@example.com")
    assert "mail alice@example.com" not in policy._texts

"""The privacy policy (config/privacy.py): one object from Settings, the same rules everywhere."""
from __future__ import annotations

import base64
import json

import pytest

from replaylens.config.privacy import (CARD_MASK, EMAIL_MASK, KEYED_HASH_PREFIX, MASK, PrivacyPolicy,
                                       mask_email)
from replaylens.config.settings import Settings

POLICY = PrivacyPolicy(identity_secret="s3cret")


@pytest.mark.parametrize("text,expected", [
    ("mail jane.doe@example.com now", f"mail {EMAIL_MASK} now"),
    ("url-encoded alice%40example.com", f"url-encoded {EMAIL_MASK}"),
    ("twice alice%2540example.com", f"twice {EMAIL_MASK}"),
    ("html alice&#64;example.com", f"html {EMAIL_MASK}"),
    ("json alice\\u0040example.com", f"json {EMAIL_MASK}"),
    ("spelled alice (at) example (dot) com", f"spelled {EMAIL_MASK}"),
    ("card 4111 1111 1111 1111", f"card {CARD_MASK}"),
    ("order 4111-1111", "order 4111-1111"),  # too short for a card or a phone number
    ("ssn 555-12-3456", f"ssn {MASK}"),
])
def test_free_text(text, expected):
    assert POLICY.text(text) == expected


def test_query_values_masked_unless_the_parameter_is_allowed():
    url = "https://s.test/p?password=hunter2&q=red+shoes&utm_source=news&page=2&email=alice%40example.com"
    assert POLICY.url(url) == f"https://s.test/p?password={MASK}&q=red+shoes&utm_source=news&page=2&email={MASK}"


def test_an_allowed_parameter_still_gets_the_text_rules():
    assert POLICY.url("https://s.test/search?q=alice%40example.com") == f"https://s.test/search?q={EMAIL_MASK}"


def test_secret_like_path_segments_are_masked_ids_and_words_are_not():
    assert POLICY.url("https://s.test/reset/tok_9f8e7d6c5b4a3f2e1d0c/confirm") == f"https://s.test/reset/{MASK}/confirm"
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
    assert POLICY.url(f"https://s.test/auth/{jwt}") == f"https://s.test/auth/{MASK}"
    encoded = base64.urlsafe_b64encode(b"alice@example.com").decode().rstrip("=")
    assert MASK in POLICY.url(f"https://s.test/u/{encoded}") or EMAIL_MASK in POLICY.url(f"https://s.test/u/{encoded}")
    kept = "https://s.test/product/123/trail-running-shoes-for-women"
    assert POLICY.url(kept) == kept
    uuid = "https://s.test/order/123e4567-e89b-12d3-a456-426614174000"
    assert POLICY.url(uuid) == uuid


def test_the_fragment_is_dropped():
    assert POLICY.url("https://s.test/a#access_token=abc") == "https://s.test/a"


def test_property_values_masked_unless_their_key_is_allowed():
    props = {"password": "hunter2", "plan": "pro", "name": "alice@example.com", "price": 9.5,
             "nested": {"x": 1}, "y": 1200}
    assert POLICY.properties(props) == {"password": MASK, "plan": "pro", "name": EMAIL_MASK, "price": 9.5,
                                        "nested": MASK, "y": 1200}


def test_the_rrweb_translators_measurements_pass_and_nothing_else_under_their_keys():
    """Numbers, bools and nulls under the translator's keys, its own words, its `response` object
    pass whatever the allowed keys; a text or a list under the same keys, a toggle's `checked`,
    and any key of the response it does not write stay masked."""
    click = {"node_id": 42, "pointer": "touch", "double_click": True, "x": 1.5,
             "response": {"kind": "mutation", "after_ms": 120, "note": "typed"}, "checked": True}
    scroll = {"node_id": None, "scroll_count": 3, "duration_ms": 800, "from_x": 0.0, "from_y": 10.0}
    odd = {"node_id": "alice@example.com", "duration_ms": [1], "pointer": "a secret", "kind": "mutations",
           "response": [{"after_ms": 1}], "level": "error", "source": "$pageview", "initiatorType": "fetch"}
    for policy in (POLICY, PrivacyPolicy(allowed_property_keys=("plan",))):  # not on the allowed list
        assert policy.properties(click) == {**click, "response": {"kind": "mutation", "after_ms": 120, "note": MASK},
                                            "checked": MASK}
        assert policy.properties(scroll) == scroll and not policy.properties_need_masking(scroll)
        assert policy.properties(odd) == {"node_id": MASK, "duration_ms": MASK, "pointer": MASK, "kind": MASK,
                                          "response": MASK, "level": "error", "source": "$pageview",
                                          "initiatorType": "fetch"}
        assert policy.properties_need_masking(click) and policy.properties_need_masking(odd)


def test_identity_becomes_a_keyed_hash_that_a_lookup_recomputes():
    key = POLICY.identity_key("Alice@Example.com")
    assert key.startswith(KEYED_HASH_PREFIX) and "alice" not in key
    assert key == POLICY.identity_key("alice@example.com ")  # the lookup of the same address matches
    assert key != PrivacyPolicy(identity_secret="other").identity_key("alice@example.com")
    assert POLICY.identity_key(key) == key  # idempotent: masking twice changes nothing
    assert PrivacyPolicy(keep_identity=True).identity_key("alice@example.com") == "alice@example.com"


def test_mask_event_masks_every_field_and_the_precheck_agrees():
    event = {"type": "custom", "url": "https://s.test/x?token=abc", "value": "typed",
             "target": {"text": "mail alice@example.com"},
             "error": {"message": "card 4111111111111111", "request_url": "https://s.test/api?key=zzz"},
             "properties": {"password": "p"}, "user": {"id": "u", "email": "alice@example.com"},
             "org": {"name": "Acme"}}
    args = (event["value"], event["url"], event["target"]["text"], event["error"]["message"],
            event["error"]["request_url"], event["properties"], event["user"]["email"], event["org"]["name"])
    assert POLICY.event_needs_masking(*args)
    POLICY.mask_event(event)
    dumped = json.dumps(event)
    for secret in ("abc", "typed", "alice@", "4111111111111111", "zzz", '"p"', "Acme"):
        assert secret not in dumped, secret
    assert not POLICY.event_needs_masking(None, "https://s.test/plain", "Buy", None, None, {"y": 3}, None, None)


def test_settings_build_the_policy_and_every_option_takes_effect():
    settings = Settings(privacy_unmask_emails=True, privacy_allowed_query_params=["token"],
                        privacy_allowed_property_keys=["password"], privacy_identity_secret="k",
                        privacy_keep_identity=False, privacy_dead_letter_keep_raw=True)
    policy = PrivacyPolicy.from_settings(settings)
    assert policy.text("a@b.co") == "a@b.co"
    assert policy.url("https://s.test/?token=abc") == "https://s.test/?token=abc"
    assert policy.properties({"password": "x"}) == {"password": "x"}
    assert policy.display_email("alice@example.com") == "alice@example.com"
    assert PrivacyPolicy().display_email("alice@example.com") == mask_email("alice@example.com")
    assert "original_base64" in policy.dead_letter_original(b"{}")


def test_dead_letters_keep_the_masked_message_and_raw_bytes_only_when_asked():
    raw = json.dumps({"type": "bogus", "url": "https://s.test/?password=hunter2", "value": "typed",
                      "user": {"email": "alice@example.com"}, "properties": {"card": "4111111111111111"}}).encode()
    kept = PrivacyPolicy().dead_letter_original(raw)
    assert set(kept) == {"original"}
    for secret in ("hunter2", "typed", "alice@example.com", "4111111111111111"):
        assert secret not in kept["original"]
    assert json.loads(kept["original"])["type"] == "bogus"  # still readable
    not_json = PrivacyPolicy().dead_letter_original(b"oops https://s.test/a?password=hunter2 alice@example.com")
    assert "hunter2" not in not_json["original"] and "alice@" not in not_json["original"]

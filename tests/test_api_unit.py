"""The API's parts without a broker: keys and scopes, the rate limit, request models, the store
(a real DuckDB file), highlights and answers, the OpenAPI document, the profile merge."""
from __future__ import annotations

import orjson
import pytest
from pydantic import ValidationError

from replaylens.api import openapi
from replaylens.api.app import HANDLERS
from replaylens.api.ask import builtin_answer, topics_of
from replaylens.api.auth import KeyFileError, KeyRing, RateLimiter, load_keys, presented_key
from replaylens.api.errors import from_validation
from replaylens.api.highlights import (
    failed_payload,
    highlights_prompt,
    overall_highlights,
    parse_highlights_answer,
    ready_payload,
    session_highlights,
)
from replaylens.api.models import HighlightsRequest, SessionsQuery
from replaylens.api.store import ApiStore
from replaylens.config.privacy import PrivacyPolicy
from replaylens.schemas.profiles import DEFAULT_PROFILE, SummaryProfile
from replaylens.sinks.builtin import BuiltinSummarizer
from replaylens.streams.profiles_topic import merged_streaming
from tests.sessions_factory import at, make_session

USER = {"id": "u1", "email": "Jane.Doe@Example.com"}


def shop_session(session_id: str = "u1:s1", start: float = 0, error: bool = True) -> dict:
    events = [
        {"type": "navigate", "url": "https://shop.example.com/", "timestamp": at(start), "user": USER},
        {"type": "navigate", "url": "https://shop.example.com/checkout", "timestamp": at(start + 5)},
        {"type": "click", "timestamp": at(start + 6), "target": {"selector": "button#pay", "text": "Pay"}},
    ]
    if error:
        events.append({"type": "console-error", "timestamp": at(start + 7),
                       "error": {"message": "TypeError: card is undefined"}})
    events.append({"type": "session-end", "timestamp": at(start + 30)})
    return make_session(events, session_id=session_id, window_id=f"{session_id}@{at(start)}")


def builtin() -> BuiltinSummarizer:
    return BuiltinSummarizer("{replay_base_url}/s/{session_id}?t={timestamp_ms}", "https://replay.example.com")


# -- keys --------------------------------------------------------------------------------------
def test_keys_from_the_environment_and_a_file_with_scopes(tmp_path):
    keys_file = tmp_path / "keys"
    keys_file.write_text("# ops\nreader-key read\n\nwriter-key read,write  # both\n")
    ring = KeyRing(load_keys("env-a, env-b,", keys_file))
    assert ring.find("env-a").scopes == {"read", "write"}
    assert ring.find("reader-key").scopes == {"read"}
    assert ring.find("writer-key").scopes == {"read", "write"}
    assert ring.find("env-") is None and ring.find("") is None and ring.find("reader-key ") is None
    assert ring.find("env-a").key_id != ring.find("env-b").key_id and "env-a" not in ring.find("env-a").key_id


@pytest.mark.parametrize("line", ["k read,delete", "k read extra"])
def test_a_bad_keys_file_line_is_named(tmp_path, line):
    keys_file = tmp_path / "keys"
    keys_file.write_text(line + "\n")
    with pytest.raises(KeyFileError, match=":1:"):
        load_keys("", keys_file)


def test_authorization_header_forms():
    assert presented_key("Bearer abc") == "abc"
    assert presented_key("token abc") == "abc"  # LogRocket
    assert presented_key("bearer   abc  ") == "abc"
    for header in (None, "", "abc", "Basic abc", "Bearer", "Bearer   "):
        assert presented_key(header) is None, header


def test_rate_limit_is_a_token_bucket_per_key():
    now = [0.0]
    limiter = RateLimiter(per_minute=3, clock=lambda: now[0])
    assert [limiter.acquire("a") for _ in range(3)] == [None, None, None]
    wait = limiter.acquire("a")
    assert wait is not None and 0 < wait <= 20  # one token every 20 s
    assert limiter.acquire("b") is None  # another key has its own bucket
    now[0] += 20.0
    assert limiter.acquire("a") is None and limiter.acquire("a") is not None
    assert RateLimiter(per_minute=0).acquire("a") is None  # 0 = no limit


def test_the_api_refuses_to_start_without_keys(tmp_path):
    from replaylens.api.app import Context
    from replaylens.config.settings import Settings

    with pytest.raises(ValueError, match="REPLAYLENS_API_KEYS"):
        Context(Settings(api_db_path=tmp_path / "api.duckdb"))


# -- request models ------------------------------------------------------------------------------
@pytest.mark.parametrize("body, field", [
    ({"webhookURL": "https://x.example"}, "userID"),
    ({"userID": "u", "webhookURL": "https://x.example", "timeRange": {"startMs": 2, "endMs": 1}}, "timeRange"),
    ({"userID": "u", "webhookURL": "https://x.example", "timeRange": {"startMs": True, "endMs": 9}}, "timeRange.startMs"),
    ({"userEmail": "nope", "webhookURL": "https://x.example"}, "userEmail"),
    ({"userID": "", "webhookURL": "https://x.example"}, "userID"),
    ({"userID": "u", "webhookURL": ""}, "webhookURL"),
])
def test_highlights_request_errors_name_the_field(body, field):
    with pytest.raises(ValidationError) as exc:
        HighlightsRequest.model_validate(body)
    assert from_validation(exc.value, whole="userID").field == field


def test_sessions_query_needs_a_user():
    with pytest.raises(ValidationError) as exc:
        SessionsQuery.model_validate({"limit": "5"})
    error = from_validation(exc.value, whole="uid")
    assert error.field == "uid" and "uid or email" in error.message
    assert SessionsQuery.model_validate({"email": "a@b.co", "limit": "5"}).limit == 5


# -- store ---------------------------------------------------------------------------------------
def test_store_indexes_by_user_and_email_hash_and_never_keeps_the_email(tmp_path):
    store = ApiStore(tmp_path / "api.duckdb", PrivacyPolicy(identity_secret="secret").lookup_key)
    sessions = [shop_session("u1:s1", 0), shop_session("u1:s2", 100), shop_session("other", 50)]
    sessions[2]["context"]["user"] = {"id": "u2", "email": "x@y.org"}
    records = [("closed", 0, n, orjson.dumps(s)) for n, s in enumerate(sessions)]
    records.append(("closed", 0, 3, b"not json"))  # skipped, its offset counted
    assert store.apply({"closed": "closed"}, records) == 3
    assert store.offsets() == {("closed", 0): 4}
    by_uid = store.sessions_of_user("u1", None, 10)
    assert [r["session_id"] for r in by_uid] == ["u1:s2", "u1:s1"]
    by_email = store.sessions_of_user(None, store.email_key("  jane.doe@example.COM"), 10)
    assert by_email == by_uid
    assert store.sessions_of_user(None, store.email_key("jane@example.com"), 10) == []
    store.close()
    raw = (tmp_path / "api.duckdb").read_bytes() + (tmp_path / "api.duckdb.wal").read_bytes() \
        if (tmp_path / "api.duckdb.wal").exists() else (tmp_path / "api.duckdb").read_bytes()
    assert b"Jane.Doe@Example.com" not in raw and b"jane.doe@example.com" not in raw
    reopened = ApiStore(tmp_path / "api.duckdb", PrivacyPolicy(identity_secret="secret").lookup_key)
    window = reopened.windows("u1:s1")[0]
    assert window["context"]["user"]["email"] == "J***@Example.com"
    assert reopened.offsets() == {("closed", 0): 4}  # the offsets survive with the rows
    reopened.close()


def test_email_hash_is_keyed():
    k1, k2 = PrivacyPolicy(identity_secret="k1"), PrivacyPolicy(identity_secret="k2")
    assert k1.lookup_key("a@b.co") != k2.lookup_key("a@b.co")
    assert k1.lookup_key("A@B.co ") == k1.lookup_key("a@b.co") != "a@b.co"
    kept = PrivacyPolicy(identity_secret="k1", keep_identity=True)
    assert kept.identity_key("a@b.co") == "a@b.co" and kept.lookup_key("a@b.co") == k1.lookup_key("a@b.co")
    assert k1.lookup_key(k1.lookup_key("a@b.co")) == k1.lookup_key("a@b.co")  # a hash is not hashed again
    assert k1.lookup_key(None) is None


def test_feedback_counts_per_profile_and_summarizer_and_highlight_requests_persist(tmp_path):
    store = ApiStore(tmp_path / "api.duckdb", PrivacyPolicy(identity_secret="secret").lookup_key)
    for n, (profile, summarizer, rating) in enumerate([("default", "builtin", "up"), ("default", "builtin", "down"),
                                                       ("default", "llm", "up"), ("crm", "builtin", "up")]):
        store.put_feedback({"feedback_id": f"f{n}", "session_id": "s", "profile_id": profile,
                            "summarizer": summarizer, "rating": rating, "created_at": n})
    store.put_feedback({"feedback_id": "f0", "session_id": "s", "profile_id": "default", "summarizer": "builtin",
                        "rating": "up", "created_at": 0})  # redelivered: counted once
    counts = {(c["profile_id"], c["summarizer"]): (c["up"], c["down"]) for c in store.feedback_counts()}
    assert counts == {("crm", "builtin"): (1, 0), ("default", "builtin"): (1, 1), ("default", "llm"): (1, 0)}
    store.add_highlight_request("r1", "u1", None, 0, 10, "https://hook.example/x", "app")
    store.add_highlight_request("r2", "u1", None, 0, 10, "https://hook.example/x", "app")
    store.set_highlight_payload("r2", "READY", {"status": "READY"}, None)
    store.add_highlight_request("r3", "u1", None, 0, 10, "https://hook.example/x", "acme/shop")
    store.finish_highlight("r3", True, 2, None)
    store.close()
    reopened = ApiStore(tmp_path / "api.duckdb", PrivacyPolicy(identity_secret="secret").lookup_key)
    assert reopened.pending_highlights() == ["r1", "r2"]
    assert reopened.highlight_request("r2")["payload"] == {"status": "READY"}
    r3 = reopened.highlight_request("r3")
    assert r3["state"] == "DELIVERED" and r3["attempts"] == 2 and r3["app_id"] == "acme/shop"
    reopened.close()


# -- highlights and answers -----------------------------------------------------------------------
def test_session_and_overall_highlights_are_markdown_with_time_coded_links():
    summaries = [builtin().summarize(shop_session("u1:s2", 100, error=False), DEFAULT_PROFILE, generated_at=1),
                 builtin().summarize(shop_session("u1:s1", 0), DEFAULT_PROFILE, generated_at=1)]
    one = session_highlights(summaries[1])
    assert one.startswith("The user [visits /](https://replay.example.com/s/u1%3As1?t=")
    assert "typeerror: card is undefined" in one.lower()
    overall = overall_highlights(summaries)
    assert overall.startswith("Across 2 sessions") and "](https://replay.example.com/s/u1%3As1?t=" in overall
    payload = ready_payload("rid", "app", summaries, overall)
    assert payload["status"] == "READY" and payload["requestID"] == "rid" and payload["appID"] == "app"
    assert [s["recordingID"] for s in payload["result"]["sessions"]] == ["u1:s2", "u1:s1"]
    assert failed_payload("rid", "app") == {"result": None, "status": "FAILED", "appID": "app", "requestID": "rid"}
    assert overall_highlights([]) == "No sessions were recorded for this user in the time range."


def test_llm_highlights_keep_only_the_moments_we_gave():
    summary = builtin().summarize(shop_session(), DEFAULT_PROFILE, generated_at=1)
    messages, by_id = highlights_prompt([summary])
    assert messages[0]["role"] == "system" and "m1|1|" in messages[1]["content"]
    text = parse_highlights_answer('{"highlights": "They [paid](m1) then [left](m99) jane@x.com."}', by_id)
    assert text.startswith(f"They [paid]({by_id['m1'].link})") and "[left]" not in text and "left" in text
    assert "jane@x.com" not in text
    for bad in ("no json here", '{"highlights": ""}', '{"other": 1}'):
        with pytest.raises(ValueError):
            parse_highlights_answer(bad, by_id)


def test_the_builtin_answers_what_it_can_and_says_when_it_cannot():
    session = shop_session()
    assert topics_of("How long did the user stay?") == ["time"]
    errors = builtin_answer(session, "Were there any errors?", builtin())
    assert errors.answered and "TypeError: card is undefined" in errors.answer
    pages = builtin_answer(session, "Which pages did they visit?", builtin())
    assert "/checkout" in pages.answer and "](https://replay.example.com" in pages.answer
    outcome = builtin_answer(session, "Did they complete the checkout?", builtin())
    assert "Outcome:" in outcome.answer
    unknown = builtin_answer(session, "What is their favourite colour?", builtin())
    assert not unknown.answered and "cannot answer" in unknown.answer


# -- the document and the profiles -----------------------------------------------------------------
def test_openapi_documents_every_route_and_every_route_has_a_handler():
    doc = openapi.document("1")
    documented = {(m, path) for path, ops in doc["paths"].items() for m in ops}
    assert documented == set(HANDLERS)
    body = doc["paths"]["/v1/highlights"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert {"userID", "userEmail", "timeRange", "webhookURL"} <= set(body["properties"])
    refs = orjson.dumps(doc).decode().count("#/components/schemas/")
    assert refs and all(name in doc["components"]["schemas"] for name in ("TimeRange", "LlmOptions"))


def test_topic_profiles_join_and_replace_file_profiles():
    files = [DEFAULT_PROFILE, SummaryProfile(id="file-one"), SummaryProfile(id="quiet", streaming=False)]
    topic = {"file-one": SummaryProfile(id="file-one", streaming=False), "new": SummaryProfile(id="new")}
    assert [p.id for p in merged_streaming(files, topic)] == ["default", "new"]
